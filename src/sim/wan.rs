//! The internet endpoint the router's health checks reach (a TCP port on loopback); down
//! while the booted firmware breaks the WAN, when connections to it are refused.
//!
//! The port stays this endpoint's while it is down: a bound socket that never listens holds
//! it (connections get a reset, so they are refused), and the listener of an up WAN shares
//! the port with it through `SO_REUSEPORT`. Another server on the machine, such as a second
//! simulated world in the same test process, binding port 0 can therefore never be handed
//! this port and answer in place of the WAN that is down.

use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpSocket};

pub struct Wan {
    addr: SocketAddr,
    /// Bound, never listening: keeps the port while the WAN is down.
    _hold: TcpSocket,
    task: Option<tokio::task::JoinHandle<()>>,
}

fn socket() -> std::io::Result<TcpSocket> {
    let s = TcpSocket::new_v4()?;
    s.set_reuseport(true)?;
    Ok(s)
}

impl Wan {
    /// An up WAN on a free loopback port.
    pub async fn start() -> std::io::Result<Wan> {
        let hold = socket()?;
        hold.bind("127.0.0.1:0".parse().expect("addr"))?;
        let addr = hold.local_addr()?;
        let mut wan = Wan {
            addr,
            _hold: hold,
            task: None,
        };
        wan.set_up(true).await?;
        Ok(wan)
    }

    fn serve(l: TcpListener) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            while let Ok((sock, _)) = l.accept().await {
                drop(sock);
            }
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub async fn set_up(&mut self, up: bool) -> std::io::Result<()> {
        match (up, self.task.is_some()) {
            (true, false) => {
                let s = socket()?;
                s.bind(self.addr)?;
                self.task = Some(Self::serve(s.listen(64)?));
            }
            (false, true) => {
                let t = self.task.take().expect("running");
                t.abort();
                let _ = t.await;
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpStream;

    #[tokio::test]
    async fn a_down_wan_refuses_and_keeps_its_port() {
        let mut wan = Wan::start().await.unwrap();
        TcpStream::connect(wan.addr()).await.unwrap();
        wan.set_up(false).await.unwrap();
        let e = TcpStream::connect(wan.addr()).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
        // Nobody else can bind the port while it is down (tokio binds with SO_REUSEADDR;
        // the kernel applies the same conflict check when it hands out a port for port 0).
        assert!(TcpListener::bind(wan.addr()).await.is_err());
        wan.set_up(true).await.unwrap();
        // The WAN closes first, so its end of the connection stays in TIME_WAIT on the
        // port: going down and up again still binds.
        let mut c = TcpStream::connect(wan.addr()).await.unwrap();
        assert_eq!(c.read(&mut [0u8; 1]).await.unwrap(), 0);
        drop(c);
        wan.set_up(false).await.unwrap();
        wan.set_up(true).await.unwrap();
        TcpStream::connect(wan.addr()).await.unwrap();
    }
}
