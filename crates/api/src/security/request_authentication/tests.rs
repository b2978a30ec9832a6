//! Tests of `RequestAuthentication` reading and rules.

use crate::validate::Severity;
use crate::{LoadOptions, Resource, load_text};

const RSA_N: &str = "xAE7eB6qugXyCAG3yhh7pkDkT65pHymX-P7KfIupjf59vsdo91bSP9C8H07pSAGQO1MV_xFj9VswgsCg4R6otmg5PV2He95lZdHtOcU5DXIg_pbhLdKXbi66GlVeK6ABZOUW3WYtnNHD-91gVuoeJT_DwtGGcp4ignkgXfkiEm4sw-4sfb4qdt5oLbyVpmW6x9cfa7vs2WTfURiCrBoUqgBo_-4WTiULmmHSGZHOjzwa8WtrtOQGsAFjIbno85jp6MnGGGZPYZbDAa_b3y5u-YpW7ypZrvD8BgtKVjgtQgZhLAGezMt0ua3DRrWnKqTZ0BJ_EyxOGuHJrLsn00fnMQ";

fn document(rule: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: jwt, namespace: foo}}
spec:
  selector:
    matchLabels: {{app: httpbin}}
  jwtRules:
  - {rule}
"
    )
}

/// Every issue (errors and warnings) as `path: message`.
fn issues(text: &str) -> Vec<String> {
    let load = load_text("t.yaml", text, &LoadOptions::default());
    let rejected = load.rejected.iter().flat_map(|r| r.issues.iter());
    let warnings = load.loaded.iter().flat_map(|l| l.warnings.iter());
    rejected.chain(warnings).map(|i| i.to_string()).collect()
}

#[test]
fn loads_a_full_rule() {
    let text = "apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata:
  name: jwt-example
  namespace: foo
spec:
  targetRefs:
  - kind: Gateway
    group: gateway.networking.k8s.io
    name: waypoint
  jwtRules:
  - issuer: testing@secure.istio.io
    jwksUri: https://raw.githubusercontent.com/istio/istio/release-1.24/security/tools/jwt/samples/jwks.json
    audiences: [app, web]
    fromHeaders:
    - name: x-jwt-assertion
      prefix: 'Bearer '
    fromParams: [my_token]
    fromCookies: [session]
    outputPayloadToHeader: x-jwt-payload
    outputClaimToHeaders:
    - header: x-jwt-sub
      claim: sub
    spaceDelimitedClaims: [scope, permissions]
    forwardOriginalToken: true
    presence: REQUIRED
    timeout: 5s
";
    let load = load_text("t.yaml", text, &LoadOptions::default());
    assert!(load.is_clean(), "{:?}", load.rejected);
    assert!(
        load.loaded[0].warnings.is_empty(),
        "{:?}",
        load.loaded[0].warnings
    );
    let Resource::RequestAuthentication(ra) = &load.loaded[0].resource else {
        panic!()
    };
    let rule = &ra.spec.jwt_rules[0];
    assert!(rule.jwks_address().unwrap().ends_with("jwks.json"));
    assert_eq!(rule.presence, Some(super::JwtPresence::Required));
}

#[test]
fn issuer_or_jwks_uri_is_required() {
    let found = issues(&document("audiences: ['']"));
    assert_eq!(
        found,
        vec![
            "spec.jwtRules[0].issuer: is required (or at least jwksUri, to accept tokens of any issuer)",
            "spec.jwtRules[0].audiences[0]: must not be empty",
        ]
    );
    assert!(issues(&document("{jwks_uri: 'https://example.com/keys'}")).is_empty());
}

#[test]
fn jwks_uri_must_be_an_http_url_with_a_host() {
    let found = issues(&document("{issuer: a, jwksUri: 'ftp://example.com/keys'}"));
    assert_eq!(
        found,
        vec!["spec.jwtRules[0].jwksUri: the scheme must be http or https, not \"ftp\""]
    );
    let found = issues(&document("{issuer: a, jwksUri: 'example.com/keys'}"));
    assert_eq!(
        found,
        vec![
            "spec.jwtRules[0].jwksUri: \"example.com/keys\" is not a valid URL: it has no scheme (such as https://)"
        ]
    );
    let found = issues(&document(
        "{issuer: a, jwksUri: 'https://example.com:https/keys'}",
    ));
    assert!(
        found[0].contains("\"https\" is not a port number"),
        "{found:?}"
    );
    let found = issues(&document("{issuer: a, jwksUri: 'https:///keys'}"));
    assert_eq!(
        found,
        vec!["spec.jwtRules[0].jwksUri: \"https:///keys\" has no host"]
    );
}

#[test]
fn only_one_key_source() {
    let found = issues(&document(
        "{issuer: a, jwksUri: 'https://a.com/k', jwks_uri: 'https://a.com/k'}",
    ));
    assert_eq!(
        found,
        vec![
            "spec.jwtRules[0]: only one of jwksUri, jwks_uri, jwks may be set (found jwksUri and jwks_uri)"
        ]
    );
}

#[test]
fn inline_key_sets_are_parsed() {
    let good = format!(
        r#"{{issuer: a, jwks: '{{"keys": [{{"kty": "RSA", "e": "AQAB", "n": "{RSA_N}"}}]}}'}}"#
    );
    assert!(issues(&document(&good)).is_empty());

    let found = issues(&document("{issuer: a, jwks: 'foo'}"));
    assert_eq!(found.len(), 1);
    assert!(
        found[0].starts_with("spec.jwtRules[0].jwks: is not valid JSON"),
        "{found:?}"
    );

    let found = issues(&document(r#"{issuer: a, jwks: '{"kty": "RSA"}'}"#));
    assert_eq!(
        found,
        vec![
            "spec.jwtRules[0].jwks: must be a JSON Web Key Set: a JSON object with a \"keys\" list"
        ]
    );

    let found = issues(&document(
        r#"{issuer: a, jwks: '{"keys": [{"kty": "RSA", "e": "AQAB"}, {"kty": "DSA"}]}'}"#,
    ));
    assert_eq!(
        found,
        vec![
            "spec.jwtRules[0].jwks: key 0: a RSA key needs the \"n\" parameter",
            "spec.jwtRules[0].jwks: key 1: unsupported key type \"DSA\" (use RSA, EC, OKP or oct)",
        ]
    );
}

#[test]
fn private_keys_are_a_warning() {
    let rule = format!(
        r#"{{issuer: a, jwks: '{{"keys": [{{"kty": "RSA", "e": "AQAB", "n": "{RSA_N}", "d": "x"}}, {{"kty": "oct", "k": "c2VjcmV0"}}]}}'}}"#
    );
    let load = load_text("t.yaml", &document(&rule), &LoadOptions::default());
    assert!(load.is_clean(), "{:?}", load.rejected);
    let warnings = &load.loaded[0].warnings;
    assert_eq!(warnings.len(), 2);
    assert!(warnings.iter().all(|w| w.severity == Severity::Warning));
    assert_eq!(warnings[0].path.to_string(), "spec.jwtRules[0].jwks");
    assert!(
        warnings[0]
            .message
            .starts_with("key 0 holds private key material")
    );
    assert!(
        warnings[1]
            .message
            .starts_with("key 1 holds private key material")
    );
}

#[test]
fn token_locations_and_output_headers() {
    let rule = "{issuer: a, fromHeaders: [{name: ''}, {name: 'bad header'}], fromParams: [''], fromCookies: [''], \
                outputPayloadToHeader: 'x payload', outputClaimToHeaders: [{header: 'x-sub', claim: ''}, {header: 'x.sub', claim: sub}]}";
    assert_eq!(
        issues(&document(rule)),
        vec![
            "spec.jwtRules[0].fromHeaders[0].name: must not be empty",
            "spec.jwtRules[0].fromHeaders[1].name: \"bad header\" is not a valid HTTP header name",
            "spec.jwtRules[0].fromParams[0]: must not be empty",
            "spec.jwtRules[0].fromCookies[0]: must not be empty",
            "spec.jwtRules[0].outputPayloadToHeader: \"x payload\" is not a valid HTTP header name",
            "spec.jwtRules[0].outputClaimToHeaders[0].claim: must not be empty",
            "spec.jwtRules[0].outputClaimToHeaders[1].header: \"x.sub\" is not allowed: use only letters, digits, '-' and '_'",
        ]
    );
    let found = issues(&document(
        "{issuer: a, outputClaimToHeaders: [{header: x-sub}]}",
    ));
    assert_eq!(
        found,
        vec!["spec.jwtRules[0].outputClaimToHeaders[0].claim: is required"]
    );
}

#[test]
fn timeouts_are_whole_milliseconds_of_at_least_one() {
    assert_eq!(
        issues(&document(
            "{issuer: a, jwksUri: 'http://a.com/k', timeout: 100us}"
        )),
        vec!["spec.jwtRules[0].timeout: must be at least 1ms (got 100us)"]
    );
    assert_eq!(
        issues(&document(
            "{issuer: a, jwksUri: 'http://a.com/k', timeout: 1500us}"
        )),
        vec!["spec.jwtRules[0].timeout: only whole milliseconds are supported"]
    );
}

#[test]
fn selector_and_target_refs_exclude_each_other() {
    let text = "apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt}
spec:
  selector: {matchLabels: {app: a}}
  targetRef: {kind: Service, name: a}
";
    assert_eq!(
        issues(text),
        vec!["spec: only one of targetRefs or selector can be set"]
    );
}
