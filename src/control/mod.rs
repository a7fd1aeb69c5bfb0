//! Operating a running rinit (SPEC section 10): the control socket, served
//! from the io thread (`server`), its protocol as pure data (`proto`), the
//! socket's place and set-up (`socket`), and the `rinit ctl` client
//! (`client`).

pub mod client;
pub mod proto;
pub mod server;
pub mod socket;
