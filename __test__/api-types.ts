// Type test (tsc -p tsconfig.test.json, not run): the public surface as a
// strict TypeScript user sees it through the package's own types.
import { Wal, WalError } from 'segwal'
import type { AppendResult, BatchResult, StreamOptions, WalOptions, WalRecord, WalStream, WalErrorCode } from 'segwal'
import type { Readable } from 'node:stream'

export async function typeTest(dir: string): Promise<void> {
  const options: WalOptions = { segmentSize: 1 << 20, sync: { intervalMs: 5 }, preallocate: true, repair: false }
  const wal: Wal = await Wal.open(dir, options)
  const a: AppendResult = await wal.append(1, 'x')
  const n: number = a.lsn + a.segment + a.offset
  const b: BatchResult = await wal.appendBatch(1, [Buffer.from('x'), new Uint8Array(1), 'y'])
  const m: number = b.firstLsn + b.lastLsn + b.count + n
  await wal.sync()
  const w: number = wal.write(1, 'x') + wal.write(2, Buffer.from('y')) + wal.write(3, new Uint8Array(1))
  const flushed: Promise<void> = wal.flush()
  await flushed
  const pending: number = wal.pendingBytes + w
  void pending
  const opts: StreamOptions = { fromLsn: m, follow: true, signal: new AbortController().signal }
  const s: WalStream = wal.stream(1, opts)
  for await (const r of s) {
    const rec: WalRecord = r
    const p: Buffer = rec.payload
    void p
  }
  const readable: Readable = wal.stream(1, { from: { segment: a.segment, offset: a.offset } }).toReadable()
  void readable
  const first: number = wal.firstLsn(1) + wal.lastLsn(1)
  const parts: number[] = wal.partitions()
  const seg = wal.segments(1)[0]
  const idx: number | undefined = seg?.index
  const stats = wal.stats()
  const bytes: number = stats.bytesWritten + (stats.partitions[0]?.bytes ?? 0)
  const purged = await wal.purgeBefore(1, 10)
  const freed: number = purged.bytesFreed + purged.segmentsDeleted + purged.firstLsn
  await wal.truncateAfter(1, 5)
  const cut: number = wal.recovery.reduce((s2, r) => s2 + r.truncatedBytes + r.segment + r.partition, 0)
  void [first, parts, idx, bytes, freed, cut]
  try {
    await wal.close()
  } catch (e) {
    if (e instanceof WalError) {
      const code: WalErrorCode = e.code
      const extra: [string | undefined, number | undefined, string | undefined] = [e.file, e.offset, e.errno]
      void [code, extra]
    }
  }
  await wal[Symbol.asyncDispose]()
  // @ts-expect-error: partitions are numbers
  await wal.append('1', 'x')
  // @ts-expect-error: payloads are bytes or strings
  await wal.append(1, 5)
  // @ts-expect-error: payloads are bytes or strings
  wal.write(1, 5)
  // @ts-expect-error: pendingBytes is read-only
  wal.pendingBytes = 0
  // @ts-expect-error: sync is 'always' | 'none' | { intervalMs }
  await Wal.open(dir, { sync: 'sometimes' })
}
