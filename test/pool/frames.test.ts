import t from 'tap'
import { FrameAllocator } from '../../src/pool/frames'

t.test('lowest chunk first, empty chunks dropped beyond one spare', async (t) => {
  const fa = new FrameAllocator(4, 1)
  const got: number[] = []
  for (let i = 0; i < 12; i++) got.push(fa.alloc())
  t.same([...got].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
  t.equal(fa.chunkCount, 3)
  t.equal(fa.framesInUse, 12)

  // one free frame in chunk 0 and one in chunk 2: the chunk 0 frame is reused first
  fa.release(10)
  fa.release(1)
  t.equal(fa.alloc(), 1)
  t.equal(fa.alloc(), 10)

  // empty chunk 1: kept as the spare
  for (const f of [4, 5, 6, 7]) fa.release(f)
  fa.trim()
  t.equal(fa.chunkCount, 3)
  // empty chunk 2 too: two empty chunks, the higher one is dropped
  for (const f of [8, 9, 10, 11]) fa.release(f)
  fa.trim()
  t.equal(fa.chunkCount, 2)
  // allocation refills chunk 1 (the lowest with room) before making a new chunk
  const f = fa.alloc()
  t.ok(f >= 4 && f < 8, `frame ${f} from chunk 1`)
  fa.release(f)
  // nothing in use: every chunk goes
  for (const g of [0, 1, 2, 3]) fa.release(g)
  fa.trim()
  t.equal(fa.framesInUse, 0)
  t.equal(fa.chunkCount, 0)
  // a vacant slot is reused: frame numbers start again at chunk 0
  t.equal(fa.alloc(), 0)
  t.equal(fa.chunkCount, 1)
})

t.test('lowest chunk first across many chunks', async (t) => {
  // one frame per chunk (chunk slot == frame number); spares kept so the bitmap must find them
  const fa = new FrameAllocator(1, 1000)
  for (let i = 0; i < 100; i++) t.equal(fa.alloc(), i)
  for (const f of [70, 3, 40]) fa.release(f)
  fa.trim()
  t.equal(fa.chunkCount, 100, 'empty chunks kept as spares')
  t.equal(fa.alloc(), 3)
  t.equal(fa.alloc(), 40)
  t.equal(fa.alloc(), 70)
  t.equal(fa.alloc(), 100)
  t.equal(fa.chunkCount, 101)
})

t.test('spareChunks 0 drops at once', async (t) => {
  const fa = new FrameAllocator(2, 0)
  const a = fa.alloc()
  const b = fa.alloc()
  const c = fa.alloc()
  t.equal(fa.chunkCount, 2)
  fa.release(c)
  fa.trim()
  t.equal(fa.chunkCount, 1)
  fa.release(a)
  fa.release(b)
  fa.trim()
  t.equal(fa.chunkCount, 0)
})

t.test('bad options', async (t) => {
  t.throws(() => new FrameAllocator(0), RangeError)
  t.throws(() => new FrameAllocator(1.5), RangeError)
  t.throws(() => new FrameAllocator(4, -1), RangeError)
})

t.test('a dropped chunk is taken back if the GC has not collected it', async (t) => {
  const orig = Buffer.allocUnsafeSlow
  let calls = 0
  Buffer.allocUnsafeSlow = (size: number) => {
    calls++
    return orig(size)
  }
  t.teardown(() => {
    Buffer.allocUnsafeSlow = orig
  })
  const fa = new FrameAllocator(4, 0)
  for (let i = 0; i < 1000; i++) {
    const f = fa.alloc()
    if (fa.chunkCount !== 1) t.fail('chunk not added')
    fa.release(f)
    fa.trim()
    if (fa.chunkCount !== 0) t.fail('chunk not dropped')
  }
  // within one synchronous run a WeakRef target cannot be collected, so one allocation serves all
  t.equal(calls, 1)
})

t.test('shared chunks: SharedArrayBuffers with serials never reused, drops reported, never taken back', async (t) => {
  const fa = new FrameAllocator(4, 0)
  const dropped: number[] = []
  fa.onDrop = (serial) => dropped.push(serial)
  const plain = fa.alloc()
  t.equal(fa.serialOf(plain), 0, 'a chunk made before sharing has no serial')
  t.ok(fa.bufferOf(plain) instanceof ArrayBuffer)
  fa.shared = true
  const frames = [1, 2, 3, 4].map(() => fa.alloc())
  t.equal(fa.serialOf(frames[0]), 0, 'frames of the old chunk stay unshared')
  const shared = frames[3]
  t.ok(fa.bufferOf(shared) instanceof SharedArrayBuffer, 'a chunk made while shared is shared memory')
  const first = fa.serialOf(shared)
  t.ok(first > 0, `serial ${first}`)
  const buf = fa.bufferOf(shared)
  fa.release(shared)
  fa.trim()
  t.same(dropped, [first], 'dropping the shared chunk is reported with its serial')
  const again = fa.alloc()
  t.ok(fa.serialOf(again) > first, 'a new chunk gets a new serial')
  t.not(fa.bufferOf(again), buf, 'the dropped shared chunk is not taken back')
  fa.reset()
  t.same(dropped, [first, first + 1], 'reset reports the shared chunks it drops, not the plain one')
  fa.shared = false
  t.equal(fa.serialOf(fa.alloc()), 0, 'unshared again')
})

t.test('onAdd hears of every shared chunk made, with its memory, before a frame of it is handed out', async (t) => {
  const fa = new FrameAllocator(2, 0)
  const added: [number, SharedArrayBuffer, number][] = []
  fa.onAdd = (serial, buf) => added.push([serial, buf, fa.framesInUse])
  fa.alloc()
  t.same(added, [], 'not for a plain chunk')
  fa.shared = true
  fa.alloc() // the plain chunk's second frame
  t.same(added, [], 'nor when a frame of a plain chunk is handed out')
  const inUse = fa.framesInUse
  const f = fa.alloc()
  t.equal(added.length, 1, 'a new shared chunk is reported')
  t.equal(added[0][0], fa.serialOf(f), 'with its serial')
  t.equal(added[0][1], fa.bufferOf(f), 'and its memory')
  t.equal(added[0][2], inUse, 'before its first frame was handed out')
  fa.alloc()
  t.equal(added.length, 1, 'frames of a chunk already reported are not')
  fa.alloc()
  t.equal(added.length, 2, 'the next chunk is')
})
