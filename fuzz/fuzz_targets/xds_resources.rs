//! Any bytes, decoded as an xDS resource of each type (the first byte picks the type): decoding
//! never panics, and whatever it accepts encodes and decodes again to the same value.

#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use trellis_proto::{Resource, decode_resource, encode, type_url};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else { return };
    let url = type_url::ALL[usize::from(pick) % type_url::ALL.len()];
    let Ok(resource) = decode_resource(url, bytes) else { return };
    let again = match &resource {
        Resource::Listener(l) => encode::listener(l).encode_to_vec(),
        Resource::RouteTable(t) => encode::route_table(t).encode_to_vec(),
        Resource::Cluster(c) => encode::cluster(c).encode_to_vec(),
        Resource::OnDemandHost(h) => encode::on_demand_host(&h.route_table, &h.host)
            .1
            .encode_to_vec(),
    };
    assert_eq!(decode_resource(url, &again).as_ref(), Ok(&resource));
});
