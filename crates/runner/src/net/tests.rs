use super::*;

#[test]
fn networks_parse_and_hand_out_host_addresses() {
    let cidr: Cidr = "10.244.0.0/16".parse().unwrap();
    let first: Vec<String> = cidr.hosts().take(3).map(|a| a.to_string()).collect();
    assert_eq!(first, ["10.244.0.1", "10.244.0.2", "10.244.0.3"]);
    assert_eq!(cidr.hosts().last().unwrap().to_string(), "10.244.255.254");
    assert!(cidr.contains("10.244.3.4".parse().unwrap()));
    assert!(!cidr.contains("10.245.0.1".parse().unwrap()));
    assert!(cidr.overlaps("10.0.0.0/8".parse().unwrap()));
    assert!(!cidr.overlaps("10.96.0.0/16".parse().unwrap()));
    assert_eq!(
        "10.244.0.1/16".parse::<Cidr>().unwrap_err(),
        "\"10.244.0.1/16\" has host bits set; the network is 10.244.0.0/16"
    );
    assert!(
        "10.244.0.0"
            .parse::<Cidr>()
            .unwrap_err()
            .contains("is not an IPv4 network")
    );
    assert!(
        "10.244.0.0/31"
            .parse::<Cidr>()
            .unwrap_err()
            .contains("too small")
    );
}

#[test]
fn names_fit_interface_names() {
    let names = Names::new("trellis").unwrap();
    assert_eq!(names.bridge(), "trellis0");
    assert_eq!(names.veth(42), "trellisv42");
    assert_eq!(names.netns("default", "web-0"), "trellis-default-web-0");
    assert!(Names::new("123").is_err());
    assert!(Names::new("toolongname").is_err());
    assert!(Names::new("Mesh").is_err());
    // The longest name and a four-digit pod index still fit in 15 bytes, with the veth's
    // peer suffix.
    assert!(format!("{}p", Names::new("abcdefghi").unwrap().veth(9999)).len() <= 15);
}

#[test]
fn capture_rules_follow_istio_init() {
    let rules = capture_rules(&Capture {
        exclude_inbound_ports: vec![9090],
        exclude_outbound_ports: vec![5432],
        exclude_outbound_ranges: vec!["169.254.0.0/16".parse().unwrap()],
    });
    let expected = "\
*nat
:TRELLIS_INBOUND - [0:0]
:TRELLIS_IN_REDIRECT - [0:0]
:TRELLIS_OUTPUT - [0:0]
:TRELLIS_REDIRECT - [0:0]
-A PREROUTING -p tcp -j TRELLIS_INBOUND
-A OUTPUT -p tcp -j TRELLIS_OUTPUT
-A TRELLIS_INBOUND -p tcp --dport 15000 -j RETURN
-A TRELLIS_INBOUND -p tcp --dport 9090 -j RETURN
-A TRELLIS_INBOUND -p tcp -j TRELLIS_IN_REDIRECT
-A TRELLIS_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
-A TRELLIS_OUTPUT -p tcp --dport 5432 -j RETURN
-A TRELLIS_OUTPUT ! -d 127.0.0.1/32 -o lo -m owner --uid-owner 1337 -j TRELLIS_IN_REDIRECT
-A TRELLIS_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN
-A TRELLIS_OUTPUT -m owner --uid-owner 1337 -j RETURN
-A TRELLIS_OUTPUT -d 127.0.0.1/32 -j RETURN
-A TRELLIS_OUTPUT -d 169.254.0.0/16 -j RETURN
-A TRELLIS_OUTPUT -j TRELLIS_REDIRECT
-A TRELLIS_REDIRECT -p tcp -j REDIRECT --to-ports 15001
COMMIT
";
    assert_eq!(rules, expected);
}

#[test]
fn hosts_files_name_the_pod_and_every_service() {
    let text = hosts_file(
        "web-0",
        "10.244.0.2".parse().unwrap(),
        &[(
            "10.96.0.1".parse().unwrap(),
            vec!["db".to_owned(), "db.default".to_owned()],
        )],
    );
    assert_eq!(
        text,
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n10.244.0.2\tweb-0\n10.96.0.1\tdb db.default\n"
    );
}
