//! The client side of HTTP/1.1 connections (HTTP/2 is served by hyper, see
//! [`crate::listener`]).

pub mod http1;
