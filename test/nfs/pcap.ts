/**
 * Writes RPC records as a pcap of one TCP stream (127.0.0.1:800 ↔ 127.0.0.2:2049), so an
 * independent dissector (Wireshark's tshark) can read what the codecs produce.
 */
export function pcapOf(packets: { fromClient: boolean; data: Buffer }[]): Buffer {
  const seq = { client: 1000, server: 5000 };
  const out: Buffer[] = [];
  const gh = Buffer.alloc(24);
  gh.writeUInt32LE(0xa1b2c3d4, 0);
  gh.writeUInt16LE(2, 4);
  gh.writeUInt16LE(4, 6);
  gh.writeUInt32LE(262144, 16);
  gh.writeUInt32LE(1, 20); // Ethernet
  out.push(gh);
  packets.forEach((p, i) => {
    const eth = Buffer.alloc(14);
    eth.writeUInt16BE(0x0800, 12);
    const ip = Buffer.alloc(20);
    ip[0] = 0x45;
    ip.writeUInt16BE(40 + p.data.length, 2);
    ip[8] = 64;
    ip[9] = 6;
    Buffer.from(p.fromClient ? [127, 0, 0, 1, 127, 0, 0, 2] : [127, 0, 0, 2, 127, 0, 0, 1]).copy(ip, 12);
    const tcp = Buffer.alloc(20);
    tcp.writeUInt16BE(p.fromClient ? 800 : 2049, 0);
    tcp.writeUInt16BE(p.fromClient ? 2049 : 800, 2);
    tcp.writeUInt32BE(p.fromClient ? seq.client : seq.server, 4);
    tcp.writeUInt32BE(p.fromClient ? seq.server : seq.client, 8);
    tcp[12] = 0x50;
    tcp[13] = 0x18; // PSH, ACK
    tcp.writeUInt16BE(65535, 14);
    if (p.fromClient) seq.client += p.data.length;
    else seq.server += p.data.length;
    const frame = Buffer.concat([eth, ip, tcp, p.data]);
    const ph = Buffer.alloc(16);
    ph.writeUInt32LE(1_700_000_000 + i, 0);
    ph.writeUInt32LE(frame.length, 8);
    ph.writeUInt32LE(frame.length, 12);
    out.push(ph, frame);
  });
  return Buffer.concat(out);
}
