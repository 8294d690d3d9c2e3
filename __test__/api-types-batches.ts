// Type test (tsc -p tsconfig.test.json, not run): streamBatches() as a strict
// TypeScript user sees it through the package's own types.
import { Wal } from 'segwal'
import type { BatchStreamOptions, RecordBatch, WalBatchStream, WalRecord } from 'segwal'

export async function batchTypeTest(wal: Wal): Promise<number> {
  const opts: BatchStreamOptions = { fromLsn: 1, follow: false, maxBytes: 1 << 20, signal: new AbortController().signal }
  const it: WalBatchStream = wal.streamBatches(1, opts)
  let total = 0
  for await (const b of it) {
    const batch: RecordBatch = b
    const n: number = batch.partition + batch.count + batch.firstLsn + batch.lastLsn
    const data: Buffer = batch.data
    const starts: Uint32Array = batch.starts
    const lengths: Uint32Array = batch.lengths
    const p: Buffer = batch.payload(0)
    const at: { segment: number; offset: number } = batch.position(0)
    for (const r of batch) {
      const rec: WalRecord = r
      total += rec.lsn + rec.payload.length + rec.segment + rec.offset
    }
    total += n + data.length + starts[0]! + lengths[0]! + p.length + at.segment + at.offset
  }
  await it.return()
  // @ts-expect-error: maxBytes is a number
  wal.streamBatches(1, { maxBytes: '1' })
  return total
}
