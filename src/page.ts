/** The page: zram's unit of storage, 4 KiB as on x86-64 and arm64 kernels. The one definition. */
export const PAGE_SHIFT = 12
export const PAGE_SIZE = 1 << PAGE_SHIFT
