/**
 * The FUSE kernel protocol, as much of it as zramfuse speaks: opcodes, flags and the byte layout of
 * the structures, from the kernel's include/uapi/linux/fuse.h (protocol 7.45; Debian's 6.1 headers
 * stop at 7.38, so the numbers are written out here rather than included). Little-endian, as every
 * machine this runs on; every structure is padded to 8 bytes.
 */

export const FUSE_KERNEL_VERSION = 7
/** The minor we implement: 7.38 has FOPEN_PARALLEL_DIRECT_WRITES and total_extlen in the header. */
export const FUSE_KERNEL_MINOR = 38
/** The oldest kernel minor we serve: 7.28 brought FUSE_MAX_PAGES. */
export const FUSE_MIN_KERNEL_MINOR = 28
export const FUSE_ROOT_ID = 1
/** Buffer a read(2) of /dev/fuse needs at least (FUSE_MIN_READ_BUFFER). */
export const FUSE_MIN_READ_BUFFER = 8192

export const enum Op {
  LOOKUP = 1, FORGET = 2, GETATTR = 3, SETATTR = 4, READLINK = 5, SYMLINK = 6, MKNOD = 8, MKDIR = 9,
  UNLINK = 10, RMDIR = 11, RENAME = 12, LINK = 13, OPEN = 14, READ = 15, WRITE = 16, STATFS = 17,
  RELEASE = 18, FSYNC = 20, SETXATTR = 21, GETXATTR = 22, LISTXATTR = 23, REMOVEXATTR = 24, FLUSH = 25,
  INIT = 26, OPENDIR = 27, READDIR = 28, RELEASEDIR = 29, FSYNCDIR = 30, ACCESS = 34, CREATE = 35,
  INTERRUPT = 36, DESTROY = 38, BATCH_FORGET = 42, FALLOCATE = 43, READDIRPLUS = 44, RENAME2 = 45,
  LSEEK = 46, SYNCFS = 50, TMPFILE = 51, STATX = 52,
}

/** fuse_init_in.flags / fuse_init_out.flags (bits 32.. go to flags2 with FUSE_INIT_EXT). */
export const InitFlag = {
  ASYNC_READ: 1 << 0,
  BIG_WRITES: 1 << 5,
  ASYNC_DIO: 1 << 15,
  PARALLEL_DIROPS: 1 << 18,
  MAX_PAGES: 1 << 22,
  INIT_EXT: 1 << 30,
} as const

/** fuse_init_in.flags2 / fuse_init_out.flags2 (flags bits 32..63, with FUSE_INIT_EXT) */
export const InitFlag2 = {
  /** FUSE_OVER_IO_URING (bit 41): the kernel offers it while enable_uring is Y; granting it routes requests to the ring once every queue has an entry. */
  OVER_IO_URING: 1 << (41 - 32),
} as const
/** fuse_init_in.flags2 and fuse_init_out.flags2 offsets */
export const INIT_IN_FLAGS2 = 16
export const INIT_OUT_FLAGS2 = 32

/** fuse_open_out.open_flags */
export const FOPEN_DIRECT_IO = 1 << 0
export const FOPEN_PARALLEL_DIRECT_WRITES = 1 << 6

/** fuse_setattr_in.valid */
export const FATTR_MODE = 1 << 0
export const FATTR_UID = 1 << 1
export const FATTR_GID = 1 << 2
export const FATTR_SIZE = 1 << 3
export const FATTR_ATIME = 1 << 4
export const FATTR_MTIME = 1 << 5
export const FATTR_FH = 1 << 6
export const FATTR_ATIME_NOW = 1 << 7
export const FATTR_MTIME_NOW = 1 << 8

export const FUSE_FSYNC_FDATASYNC = 1 << 0

/** Sizes and field offsets, in bytes. */
export const IN_HEADER = 40 // len u32, opcode u32, unique u64, nodeid u64, uid, gid, pid u32, total_extlen u16, pad u16
export const OUT_HEADER = 16 // len u32, error i32, unique u64
export const ATTR_SIZE = 88 // fuse_attr
export const ENTRY_OUT = 40 + ATTR_SIZE // nodeid, generation, entry_valid, attr_valid u64; 2 x nsec u32; attr
export const ATTR_OUT = 16 + ATTR_SIZE // attr_valid u64, attr_valid_nsec u32, dummy u32; attr
export const OPEN_OUT = 16 // fh u64, open_flags u32, backing_id i32
export const WRITE_OUT = 8 // size u32, padding u32
export const STATFS_OUT = 80 // fuse_kstatfs
export const INIT_OUT = 64 // fuse_init_out (7.40+ layout; the fields past flags2 stay 0)
export const INIT_IN_MIN = 16 // major, minor, max_readahead, flags
export const READ_IN = 40 // fh, offset u64; size, read_flags u32; lock_owner u64; flags, padding u32
export const WRITE_IN = 40 // fh, offset u64; size, write_flags u32; lock_owner u64; flags, padding u32
export const OPEN_IN = 8 // flags, open_flags
export const RELEASE_IN = 24 // fh u64, flags, release_flags u32, lock_owner u64
export const FSYNC_IN = 16 // fh u64, fsync_flags, padding
export const FALLOCATE_IN = 32 // fh, offset, length u64; mode, padding u32
export const SETATTR_IN = 88
export const FORGET_IN = 8 // nlookup u64
export const BATCH_FORGET_IN = 8 // count, dummy u32; then count x (nodeid u64, nlookup u64)
export const INTERRUPT_IN = 8 // unique u64
export const MKNOD_IN = 16
export const MKDIR_IN = 8
export const CREATE_IN = 16
export const RENAME_IN = 8
export const RENAME2_IN = 16
export const LINK_IN = 8
/** fuse_dirent: ino u64, off u64, namelen u32, type u32, name, padded to 8 */
export const DIRENT_HEADER = 24

/** setattr_in field offsets */
export const SETATTR = { valid: 0, fh: 8, size: 16, atime: 32, mtime: 40, atimensec: 56, mtimensec: 60, mode: 68, uid: 76, gid: 80 } as const
