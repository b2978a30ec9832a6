//! Tests of the rules of HTTP rules: actions, matches, header changes, destinations, redirects,
//! direct responses, retries, rewrites, faults, mirrors and CORS.

use super::{errors, has, warnings};

#[test]
fn rule_actions_conflict() {
    let e = errors(
        "hosts: [a]
http:
- redirect: {uri: /x}
  route: [{destination: {host: b}}]
  fault: {abort: {httpStatus: 500}}
  rewrite: {uri: /y}
  directResponse: {status: 200}
- directResponse: {status: 200}
  route: [{destination: {host: b}}]
- match: [{uri: {prefix: /z}}]
- route: [{destination: {host: b}}]
  mirror: {host: c}
  mirrors: [{destination: {host: d}}]",
    );
    has(
        &e,
        "spec.http[0].redirect",
        "redirect cannot be combined with route",
    );
    has(
        &e,
        "spec.http[0].redirect",
        "redirect cannot be combined with fault",
    );
    has(
        &e,
        "spec.http[0].redirect",
        "redirect cannot be combined with rewrite",
    );
    has(
        &e,
        "spec.http[0].redirect",
        "redirect cannot be combined with directResponse",
    );
    has(
        &e,
        "spec.http[1].directResponse",
        "directResponse cannot be combined with route",
    );
    has(
        &e,
        "spec.http[2].route",
        "needs a route, a redirect or a directResponse",
    );
    has(
        &e,
        "spec.http[3].mirrors",
        "mirror and mirrors cannot both be set",
    );
    assert_eq!(e.len(), 7, "{e:#?}");
}

#[test]
fn delegation() {
    let root = errors(
        "hosts: [a]
http:
- delegate: {name: reviews, namespace: other}
  redirect: {uri: /x}
  route: [{destination: {host: b}}]
- delegate: {namespace: Bad}",
    );
    has(
        &root,
        "spec.http[0].redirect",
        "a rule that delegates cannot redirect",
    );
    has(
        &root,
        "spec.http[0].route",
        "a rule that delegates cannot have a route",
    );
    has(
        &root,
        "spec.http[1].delegate.name",
        "name the VirtualService",
    );
    has(
        &root,
        "spec.http[1].delegate.namespace",
        "not a valid namespace",
    );
    let delegate = errors("http:\n- delegate: {name: more}\n  route: [{destination: {host: b}}]");
    has(
        &delegate,
        "spec.http[0].delegate",
        "cannot delegate further",
    );
    assert!(errors("hosts: [a]\nhttp:\n- delegate: {name: reviews}").is_empty());
}

#[test]
fn match_headers() {
    let e = errors(
        "hosts: [a]
http:
- match:
  - headers:
      \"\": {exact: x}
      \":host\": {exact: x}
      \"bad header\": {exact: x}
      X-Upper: {prefix: \"\"}
      \"@request.auth.claims.group\": {exact: admin}
      x-empty-regex: {regex: \"\"}
    withoutHeaders:
      x-a: {regex: \"*\"}
      x-b: {prefix: \"\"}
  route: [{destination: {host: b}}]",
    );
    has(&e, "spec.http[0].match[0].headers[\"\"]", "cannot be empty");
    has(
        &e,
        "spec.http[0].match[0].headers.:host",
        "not a pseudo-header that can be matched",
    );
    has(
        &e,
        "spec.http[0].match[0].headers[\"bad header\"]",
        "not a valid HTTP header name",
    );
    has(
        &e,
        "spec.http[0].match[0].headers.X-Upper.prefix",
        "cannot be empty",
    );
    has(
        &e,
        "spec.http[0].match[0].headers[\"@request.auth.claims.group\"]",
        "only works at gateways",
    );
    has(
        &e,
        "spec.http[0].match[0].headers.x-empty-regex.regex",
        "a regex cannot be empty",
    );
    has(
        &e,
        "spec.http[0].match[0].withoutHeaders.x-b.prefix",
        "cannot be empty",
    );
    assert_eq!(e.len(), 7, "{e:#?}");
    let at_gateway = "hosts: [a]\ngateways: [ns/gw]\nhttp:\n- match: [{headers: {\"@request.auth.claims[group]\": {exact: x}}}]\n  route: [{destination: {host: b}}]";
    assert!(errors(at_gateway).is_empty());
}

#[test]
fn match_fields() {
    let long = "a".repeat(1025);
    let e = errors(&format!(
        "hosts: [a]
http:
- match:
  - uri: {{prefix: \"\"}}
    method: {{prefix: \"\"}}
    authority: {{regex: \"{long}\"}}
    queryParams: {{q: {{regex: \"\"}}}}
    port: 70000
    sourceLabels: {{\"-bad\": x}}
    gateways: [\"ns/*\"]
    sourceNamespace: Bad_NS
  route: [{{destination: {{host: b}}}}]"
    ));
    has(&e, "spec.http[0].match[0].method.prefix", "cannot be empty");
    has(
        &e,
        "spec.http[0].match[0].authority.regex",
        "at most 1024 characters",
    );
    has(
        &e,
        "spec.http[0].match[0].queryParams.q.regex",
        "cannot be empty",
    );
    has(&e, "spec.http[0].match[0].port", "between 1 and 65535");
    has(&e, "spec.http[0].match[0].sourceLabels.-bad", "label key");
    has(
        &e,
        "spec.http[0].match[0].gateways[0]",
        "not a valid gateway name",
    );
    has(
        &e,
        "spec.http[0].match[0].sourceNamespace",
        "not a valid namespace name",
    );
    assert_eq!(e.len(), 7, "{e:#?}");
}

#[test]
fn bad_regexes_and_durations_are_refused_when_read() {
    let e = errors(
        "hosts: [a]\nhttp:\n- match: [{uri: {regex: \"(a\"}}]\n  timeout: 5 seconds\n  route: [{destination: {host: b}}]",
    );
    has(&e, "spec.http[0].match[0].uri.regex", "invalid regex");
    has(&e, "spec.http[0].timeout", "invalid duration");
}

#[test]
fn header_changes() {
    let e = errors(
        "hosts: [a]
http:
- route:
  - destination: {host: b}
    headers:
      request:
        set: {\":path\": /x, host: b.example.com}
        remove: [host, \":authority\"]
      response:
        set: {\":status\": \"200\", x-bad: \"50%\"}
        add: {x-var: \"%UNCLOSED\", x-ok: \"%%done %HOSTNAME% %REQ(x-id)%\"}
        remove: [\"\"]",
    );
    let at = "spec.http[0].route[0].headers";
    has(&e, &format!("{at}.request.set.:path"), "pseudo-header");
    has(
        &e,
        &format!("{at}.request.remove[0]"),
        "host header cannot be removed",
    );
    has(&e, &format!("{at}.request.remove[1]"), "pseudo-header");
    has(&e, &format!("{at}.response.set.:status"), "pseudo-header");
    has(&e, &format!("{at}.response.set.x-bad"), "lone '%'");
    has(&e, &format!("{at}.response.add.x-var"), "not closed");
    has(&e, &format!("{at}.response.remove[0]"), "cannot be empty");
    assert_eq!(e.len(), 7, "{e:#?}");
}

#[test]
fn header_values() {
    use super::super::headers::check_header_value;
    for ok in [
        "plain",
        "",
        "100%%",
        "%HOSTNAME%",
        "a %REQ(x-id)% b",
        "%FILTER_STATE([\"a\", \"b\"])%",
        "%X( [ \"a\" ] )%",
        "tab\there",
    ] {
        assert!(check_header_value(ok).is_ok(), "{ok}");
    }
    for bad in [
        "abc%",
        "%START%%",
        "%X([a])%",
        "%X([\"a\" x])%",
        "%X([\"a\"] x)%",
        "%X(a) x%",
        "new\nline",
        "%X(\"a\\",
    ] {
        assert!(check_header_value(bad).is_err(), "{bad}");
    }
}

#[test]
fn authority_is_rewritten_once() {
    let e = errors(
        "hosts: [a]
http:
- rewrite: {authority: one.example.com}
  headers:
    request:
      set: {\":authority\": two.example.com}
  route: [{destination: {host: b}}]",
    );
    has(
        &e,
        "spec.http[0].headers.request.set.:authority",
        "already rewritten by rewrite.authority",
    );
    let ok = "hosts: [a]\nhttp:\n- headers: {request: {set: {host: two.example.com}}}\n  route: [{destination: {host: b, port: {number: 80}}, headers: {request: {set: {\":authority\": x}}}}]";
    assert!(errors(ok).is_empty());
}

#[test]
fn weights() {
    let e = errors(
        "hosts: [a]
http:
- route:
  - {destination: {host: b}, weight: -10}
  - {destination: {host: c}, weight: 10}
tcp:
- route:
  - {destination: {host: b}}
  - {destination: {host: c}, weight: 0}",
    );
    has(&e, "spec.http[0].route[0].weight", "cannot be negative");
    has(&e, "spec.http[0].route", "add up to 0");
    has(&e, "spec.tcp[0].route", "add up to 0");
    // Weights are relative shares: they need not add up to 100.
    let ok = "hosts: [a]\nhttp:\n- route:\n  - {destination: {host: b}, weight: 1}\n  - {destination: {host: c}, weight: 3}";
    assert!(errors(ok).is_empty());
}

#[test]
fn destinations() {
    let e = errors(
        "hosts: [a]\nhttp:\n- route: [{destination: {host: \"*\", subset: V1}}]\n  mirror: {host: \"b!\"}",
    );
    has(
        &e,
        "spec.http[0].route[0].destination.host",
        "cannot be \"*\"",
    );
    has(&e, "spec.http[0].route[0].destination.subset", "invalid");
    has(&e, "spec.http[0].mirror.host", "invalid");
}

#[test]
fn redirects() {
    let e = errors(
        "hosts: [a]
http:
- match: [{uri: {exact: /a}}]
  redirect: {uri: /x, prefixRewrite: /y, redirectCode: 200, scheme: ftp, port: 70000, derivePort: FROM_REQUEST_PORT}
- redirect: {redirectCode: 301}",
    );
    has(
        &e,
        "spec.http[0].redirect",
        "only one of uri, prefixRewrite may be set",
    );
    has(
        &e,
        "spec.http[0].redirect",
        "only one of port, derivePort may be set",
    );
    has(
        &e,
        "spec.http[0].redirect.prefixRewrite",
        "match[0].uri is not",
    );
    has(
        &e,
        "spec.http[0].redirect.redirectCode",
        "not a redirect status",
    );
    has(&e, "spec.http[0].redirect.scheme", "http or https");
    has(&e, "spec.http[0].redirect.port", "between 1 and 65535");
    has(&e, "spec.http[1].redirect", "must set at least one of");
    assert_eq!(e.len(), 7, "{e:#?}");
}

#[test]
fn direct_responses() {
    let big = "x".repeat(200 * 1024);
    let e = errors(&format!(
        "hosts: [a]
http:
- directResponse: {{status: 700, body: {{bytes: \"not base64!\"}}}}
- directResponse: {{status: 200, body: {{string: \"{big}\"}}}}"
    ));
    has(&e, "spec.http[0].directResponse.status", "from 200 to 599");
    has(
        &e,
        "spec.http[0].directResponse.body.bytes",
        "not valid base64",
    );
    assert_eq!(e.len(), 2, "{e:#?}");
    let w = warnings(&format!(
        "hosts: [a]\nhttp:\n- directResponse: {{status: 200, body: {{string: \"{big}\"}}}}"
    ));
    has(&w, "spec.http[0].directResponse.body", "over 100 KiB");
    let huge = "QUJD".repeat(400_000);
    let e = errors(&format!(
        "hosts: [a]\nhttp:\n- directResponse: {{status: 200, body: {{bytes: \"{huge}\"}}}}"
    ));
    has(&e, "spec.http[0].directResponse.body", "at most 1 MiB");
    let e = errors(
        "hosts: [a]\nhttp:\n- directResponse: {status: 200, body: {string: a, bytes: YQ==}}",
    );
    has(
        &e,
        "spec.http[0].directResponse.body",
        "only one of string or bytes",
    );
}

#[test]
fn retries() {
    let e = errors(
        "hosts: [a]
http:
- route: [{destination: {host: b}}]
  retries: {attempts: -1, perTryTimeout: 500us, retryOn: \"5xx, reset,599,gateway-error\", backoff: 1500us}
- route: [{destination: {host: b}}]
  retries: {perTryTimeout: 1s, retryOn: 5xx}",
    );
    has(&e, "spec.http[0].retries.attempts", "cannot be negative");
    has(
        &e,
        "spec.http[0].retries.perTryTimeout",
        "must be at least 1ms",
    );
    has(
        &e,
        "spec.http[0].retries.retryOn",
        "\" reset\" is not a retry condition",
    );
    has(
        &e,
        "spec.http[0].retries.retryOn",
        "\"599\" is not a retry condition",
    );
    has(
        &e,
        "spec.http[0].retries.backoff",
        "whole number of milliseconds",
    );
    has(
        &e,
        "spec.http[1].retries",
        "perTryTimeout and retryOn is set",
    );
    assert_eq!(e.len(), 6, "{e:#?}");
}

#[test]
fn timeouts() {
    let e = errors("hosts: [a]\nhttp:\n- route: [{destination: {host: b}}]\n  timeout: 0s");
    has(&e, "spec.http[0].timeout", "must be at least 1ms");
}

#[test]
fn rewrites() {
    let e = errors(
        "hosts: [a]
http:
- route: [{destination: {host: b}}]
  rewrite: {uri: /x, uriRegexRewrite: {match: \"^/a(.*)\"}}
- route: [{destination: {host: b}}]
  rewrite: {}",
    );
    has(
        &e,
        "spec.http[0].rewrite",
        "only one of uri, uriRegexRewrite may be set",
    );
    has(
        &e,
        "spec.http[0].rewrite.uriRegexRewrite.rewrite",
        "needs both match and rewrite",
    );
    has(
        &e,
        "spec.http[1].rewrite",
        "must set uri, uriRegexRewrite or authority",
    );
    assert_eq!(e.len(), 3, "{e:#?}");
}

#[test]
fn faults() {
    let e = errors(
        "hosts: [a]
http:
- route: [{destination: {host: b}}]
  fault:
    abort: {httpStatus: 600, grpcStatus: NOPE, percentage: {value: 0.00001}}
    delay: {exponentialDelay: 1s, percent: 150}
- route: [{destination: {host: b}}]
  fault: {}
- route: [{destination: {host: b}}]
  fault: {abort: {http2Error: PROTOCOL_ERROR}}",
    );
    let at = "spec.http[0].fault";
    has(
        &e,
        &format!("{at}.abort"),
        "only one of httpStatus, grpcStatus, http2Error",
    );
    has(&e, &format!("{at}.abort.httpStatus"), "from 200 to 599");
    has(
        &e,
        &format!("{at}.abort.grpcStatus"),
        "not a gRPC status name",
    );
    has(
        &e,
        &format!("{at}.abort.percentage.value"),
        "at least 0.0001",
    );
    has(
        &e,
        &format!("{at}.delay.exponentialDelay"),
        "not supported yet",
    );
    has(&e, &format!("{at}.delay.percent"), "between 0 and 100");
    has(&e, "spec.http[1].fault", "needs a delay, an abort, or both");
    has(
        &e,
        "spec.http[2].fault.abort.http2Error",
        "not supported yet",
    );
    assert_eq!(e.len(), 8, "{e:#?}");
    let w = warnings(
        "hosts: [a]\nhttp:\n- route: [{destination: {host: b}}]\n  fault: {abort: {percentage: {value: 5}}, delay: {percent: 5}}",
    );
    has(&w, "spec.http[0].fault.abort", "nothing is aborted");
    has(&w, "spec.http[0].fault.delay", "nothing is delayed");
    has(&w, "spec.http[0].fault.delay.percent", "deprecated");
    let e = errors(
        "hosts: [a]\nhttp:\n- route: [{destination: {host: b}}]\n  fault: {abort: {httpStatus: 500, percentage: {value: 120}}}",
    );
    has(
        &e,
        "spec.http[0].fault.abort.percentage.value",
        "between 0 and 100",
    );
}

#[test]
fn mirrors() {
    let text = "hosts: [a]\nhttp:\n- route: [{destination: {host: b}}]\n  mirror: {host: c}\n  mirrorPercent: 150\n- route: [{destination: {host: b}}]\n  mirror_percent: 5\n  mirrors: [{destination: {host: \"*\"}, percentage: {value: 50}}]";
    let e = errors(text);
    has(&e, "spec.http[0].mirrorPercent", "at most 100");
    has(
        &e,
        "spec.http[1].mirrors[0].destination.host",
        "cannot be \"*\"",
    );
    assert_eq!(e.len(), 2, "{e:#?}");
    let w = warnings(
        "hosts: [a]\nhttp:\n- route: [{destination: {host: b}}]\n  mirror: {host: c}\n  mirror_percent: 5",
    );
    has(
        &w,
        "spec.http[0].mirror_percent",
        "deprecated; use mirrorPercentage",
    );
}

#[test]
fn cors() {
    let e = errors(
        "hosts: [a]
http:
- route: [{destination: {host: b}}]
  corsPolicy:
    allowOrigins: [{exact: \"\"}, {}, {regex: \"\"}, {prefix: \"https://\"}]
    allowMethods: [get, FETCH, GET]
    allowHeaders: [\"\", \"bad header\", \"*\"]
    exposeHeaders: [\"x(y)\"]
    maxAge: 1500ms",
    );
    let at = "spec.http[0].corsPolicy";
    has(
        &e,
        &format!("{at}.allowOrigins[0]"),
        "needs a non-empty exact, prefix or regex",
    );
    has(
        &e,
        &format!("{at}.allowOrigins[1]"),
        "needs a non-empty exact, prefix or regex",
    );
    has(
        &e,
        &format!("{at}.allowOrigins[2]"),
        "needs a non-empty exact, prefix or regex",
    );
    has(
        &e,
        &format!("{at}.allowMethods[0]"),
        "case-sensitive: write GET",
    );
    has(&e, &format!("{at}.allowMethods[1]"), "not an HTTP method");
    has(&e, &format!("{at}.allowHeaders[0]"), "cannot be empty");
    has(
        &e,
        &format!("{at}.allowHeaders[1]"),
        "not a valid HTTP header name",
    );
    has(
        &e,
        &format!("{at}.exposeHeaders[0]"),
        "not a valid HTTP header name",
    );
    has(&e, &format!("{at}.maxAge"), "whole number of seconds");
    assert_eq!(e.len(), 9, "{e:#?}");
    let w = warnings(
        "hosts: [a]\nhttp:\n- route: [{destination: {host: b}}]\n  corsPolicy: {allowOrigin: [\"*\"]}",
    );
    has(&w, "spec.http[0].corsPolicy.allowOrigin", "deprecated");
}
