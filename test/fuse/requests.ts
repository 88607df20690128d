// FUSE requests as the kernel builds them (include/uapi/linux/fuse.h), for the session's and the
// io_uring channel's tests.

let nextUnique = 2

/** fuse_in_header + body; the unique is a fresh even one unless given, the length the true one unless given. */
export function request(opcode: number, nodeid: number, body: Buffer, opts: { unique?: number; len?: number } = {}): Buffer {
  const h = Buffer.alloc(40)
  const unique = opts.unique ?? (nextUnique += 2)
  h.writeUInt32LE(opts.len ?? 40 + body.length, 0)
  h.writeUInt32LE(opcode, 4)
  h.writeUInt32LE(unique >>> 0, 8)
  h.writeUInt32LE(nodeid, 16)
  return Buffer.concat([h, body])
}

/** fuse_read_in / fuse_write_in (40 bytes): fh, offset, size. */
export function rwBody(fh: number, offset: number, size: number): Buffer {
  const b = Buffer.alloc(40)
  b.writeUInt32LE(fh, 0)
  b.writeBigUInt64LE(BigInt(offset), 8)
  b.writeUInt32LE(size, 16)
  return b
}
