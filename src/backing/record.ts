import { crc32 } from 'node:zlib'

/*
 * A packed record on the lower file: a 16-byte header, then the page's compressed bytes.
 *
 *   0  u16  magic 0x5a52 ("ZR")
 *   2  u8   flags (RECORD_HUGE: the payload is the raw page)
 *   3  u8   algorithm (the codec's index in the registry)
 *   4  u32  page index
 *   8  u16  payload length (1..4096)
 *  10  u16  reserved, 0
 *  12  u32  CRC-32 of bytes 0..11 and the payload
 *
 * The checksum is zlib's CRC-32 from node:zlib (Node >= 20.15): native, no dependency, ~1 us per
 * 1.5 KiB record here, well under the disk read it guards. It covers the header too, so a record
 * read from the wrong place (a stale location, a torn segment) fails as surely as a flipped bit.
 */
export const RECORD_HEADER_BYTES = 16
export const RECORD_MAGIC = 0x5a52
export const RECORD_HUGE = 1

export function recordBytes(payloadLen: number): number {
  return RECORD_HEADER_BYTES + payloadLen
}

/** Write a record's header in front of its payload, which is already at buf[off+16 ...]. */
export function sealRecord(buf: Uint8Array, off: number, index: number, payloadLen: number, algorithm: number, flags: number): void {
  const dv = new DataView(buf.buffer, buf.byteOffset + off, RECORD_HEADER_BYTES)
  dv.setUint16(0, RECORD_MAGIC, true)
  dv.setUint8(2, flags)
  dv.setUint8(3, algorithm)
  dv.setUint32(4, index, true)
  dv.setUint16(8, payloadLen, true)
  dv.setUint16(10, 0, true)
  dv.setUint32(12, recordChecksum(buf, off, payloadLen), true)
}

function recordChecksum(buf: Uint8Array, off: number, payloadLen: number): number {
  const head = crc32(buf.subarray(off, off + 12))
  return crc32(buf.subarray(off + RECORD_HEADER_BYTES, off + RECORD_HEADER_BYTES + payloadLen), head)
}

export interface RecordHeader {
  flags: number
  algorithm: number
  index: number
  payloadLen: number
}

/** Parse the header at buf[off]; null when the magic or length is not a record's. */
export function parseRecordHeader(buf: Uint8Array, off: number): RecordHeader | null {
  if (off + RECORD_HEADER_BYTES > buf.length) return null
  const dv = new DataView(buf.buffer, buf.byteOffset + off, RECORD_HEADER_BYTES)
  if (dv.getUint16(0, true) !== RECORD_MAGIC) return null
  const payloadLen = dv.getUint16(8, true)
  if (payloadLen === 0 || payloadLen > 4096) return null
  return { flags: dv.getUint8(2), algorithm: dv.getUint8(3), index: dv.getUint32(4, true), payloadLen }
}

/**
 * Check a record read back from the lower file against what the page table expects of it: the
 * same page, the same length, and an intact checksum.
 */
export function verifyRecord(buf: Uint8Array, off: number, index: number, payloadLen: number): boolean {
  const h = parseRecordHeader(buf, off)
  if (h === null || h.index !== index || h.payloadLen !== payloadLen) return false
  if (off + RECORD_HEADER_BYTES + payloadLen > buf.length) return false
  const dv = new DataView(buf.buffer, buf.byteOffset + off, RECORD_HEADER_BYTES)
  return dv.getUint32(12, true) === recordChecksum(buf, off, payloadLen)
}
