//! A DNS server on loopback (UDP) whose answers the test sets: addresses
//! with a TTL, NXDOMAIN, SERVFAIL, or silence (a timeout). It records the
//! names it was asked.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::net::UdpSocket;

/// What a name answers now.
#[derive(Clone, Debug)]
pub enum Answer {
    Addresses(Vec<IpAddr>, u32),
    NxDomain,
    ServFail,
    /// No answer at all: the resolver times out.
    Silent,
}

pub struct DnsServer {
    pub addr: SocketAddr,
    table: Arc<Mutex<HashMap<String, Answer>>>,
    asked: Arc<Mutex<Vec<String>>>,
}

impl DnsServer {
    pub async fn start() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind dns");
        let addr = socket.local_addr().expect("dns address");
        let table: Arc<Mutex<HashMap<String, Answer>>> = Arc::default();
        let asked: Arc<Mutex<Vec<String>>> = Arc::default();
        let (t, a) = (table.clone(), asked.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                let Ok(query) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let Some(q) = query.queries.first().cloned() else {
                    continue;
                };
                let name = q
                    .name()
                    .to_ascii()
                    .trim_end_matches('.')
                    .to_ascii_lowercase();
                a.lock().expect("lock").push(name.clone());
                let answer = t.lock().expect("lock").get(&name).cloned();
                let id = query.metadata.id;
                let mut reply = Message::response(id, query.metadata.op_code);
                reply.metadata.recursion_desired = query.metadata.recursion_desired;
                reply.metadata.recursion_available = true;
                reply.add_query(q.clone());
                match answer.unwrap_or(Answer::NxDomain) {
                    Answer::Silent => continue,
                    Answer::NxDomain => reply.metadata.response_code = ResponseCode::NXDomain,
                    Answer::ServFail => reply.metadata.response_code = ResponseCode::ServFail,
                    Answer::Addresses(ips, ttl) => {
                        for ip in ips {
                            let rdata = match (ip, q.query_type()) {
                                (IpAddr::V4(v4), RecordType::A) => RData::A(A(v4)),
                                (IpAddr::V6(v6), RecordType::AAAA) => RData::AAAA(AAAA(v6)),
                                _ => continue,
                            };
                            reply.add_answer(Record::from_rdata(q.name().clone(), ttl, rdata));
                        }
                    }
                }
                if let Ok(bytes) = reply.to_vec() {
                    let _ = socket.send_to(&bytes, from).await;
                }
            }
        });
        Self { addr, table, asked }
    }

    pub fn set(&self, name: &str, answer: Answer) {
        self.table
            .lock()
            .expect("lock")
            .insert(name.to_string(), answer);
    }

    /// The names asked so far (one entry a query: A and AAAA each).
    pub fn asked(&self) -> Vec<String> {
        self.asked.lock().expect("lock").clone()
    }
}
