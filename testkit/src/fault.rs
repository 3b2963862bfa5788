//! A TCP proxy that can cut a dependency off and bring it back, for outage tests that must not disturb the
//! shared local stack (other tests keep using the real server directly).

use std::net::SocketAddr;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Forwards `127.0.0.1:<port>` to an upstream address while up; while down, drops every open connection
/// and closes new ones at once, as a crashed or partitioned server looks to a client.
#[derive(Debug)]
pub struct FaultProxy {
    pub address: SocketAddr,
    up: watch::Sender<bool>,
}

impl FaultProxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), upstream).await
    }

    /// Listens on a fixed address (e.g. the port a broker advertises, see `KafkaFault`).
    pub async fn start_on(address: SocketAddr, upstream: SocketAddr) -> Self {
        let listener =
            TcpListener::bind(address).await.unwrap_or_else(|error| panic!("binding the proxy on {address}: {error}"));
        let address = listener.local_addr().unwrap_or_else(|error| panic!("proxy address: {error}"));
        let (up, state) = watch::channel(true);
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !*state.borrow() {
                    let _closing = client.shutdown().await;
                    continue;
                }
                let mut state = state.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else { return };
                    tokio::select! {
                        _copied = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _down = state.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self { address, up }
    }

    /// Cuts the dependency off: open connections drop, new ones are refused.
    pub fn cut(&self) {
        let _no_connections = self.up.send(false);
    }

    /// Brings the dependency back.
    pub fn restore(&self) {
        let _no_connections = self.up.send(true);
    }
}
