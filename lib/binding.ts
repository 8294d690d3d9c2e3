/**
 * Loads the native addon (node-gyp-build: `build/Release/*.node` first, then
 * `prebuilds/<platform>-<arch>/*.node`) and describes what it exports.
 * Nothing else lives here.
 */
import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import type { NativeErrorDetail } from './errors'
import type { PurgeResult, SegmentInfo, WalStats } from './types'

// eslint-disable-next-line @typescript-eslint/no-require-imports
const nodeGypBuild = require('node-gyp-build') as (dir: string) => unknown

/**
 * A batch read by a native reader; only `nextLsn` when it has caught up. Payload `i`
 * starts at `index[i]` in `data` and is `index[count + i]` bytes long; record `i` has
 * LSN `firstLsn + i` and starts at offset `offsetBase + index[i]` of `segment`.
 */
export interface NativeBatch {
  nextLsn: number
  data?: Buffer
  index?: Uint32Array
  count?: number
  firstLsn?: number
  segment?: number
  offsetBase?: number
}

/** What `readerScan` measured (the bench's engine read rate; not part of the API). */
export interface ReadScan {
  records: number
  bytes: number
  seconds: number
  /** CPU time of the reading thread (NaN where the platform has no account of it). */
  cpuSeconds: number
}

/** Opaque handle of an open WAL (a napi External). */
export interface WalHandle {
  readonly __walHandle: unique symbol
}

/** Opaque handle of a reader (a napi External). */
export interface ReaderHandle {
  readonly __readerHandle: unique symbol
}

/**
 * What the addon exports: plain functions over opaque handles (see
 * src/lib.rs for why not classes, and for the error and ack encodings).
 */
export interface NativeBinding {
  /** `sync`: 0 always, 1 none, 2 every `intervalMs`. */
  open(dir: string, segmentSize: number, sync: number, intervalMs: number, preallocate: boolean, repair: boolean): Promise<WalHandle>
  setNotifier(wal: WalHandle, callback: () => void): void
  setRef(wal: WalHandle, on: boolean): void
  releaseNotifier(wal: WalHandle): void
  takeAcks(wal: WalHandle, out: Float64Array): number
  takeAckErrors(wal: WalHandle): NativeErrorDetail[]
  recovery(wal: WalHandle): number[]
  append(wal: WalHandle, partition: number, payload: Uint8Array): number
  appendString(wal: WalHandle, partition: number, payload: string): number
  /**
   * `lsns[i]`: 0 for an append, the LSN handed out for a write (staged only at
   * that LSN). Overwritten with each record's LSN, or -(k + 1) for the k-th
   * returned error.
   */
  appendMany(
    wal: WalHandle,
    data: Uint8Array,
    lengths: Uint32Array,
    partitions: Uint16Array,
    count: number,
    lsns: Float64Array,
  ): NativeErrorDetail[] | null
  appendBatch(wal: WalHandle, partition: number, parts: Uint8Array[]): number
  /** A written record staged at once (large ones): its LSN. */
  write(wal: WalHandle, partition: number, payload: Uint8Array): number
  writeString(wal: WalHandle, partition: number, payload: string): number
  /** The LSN the partition's next record gets. */
  nextLsn(wal: WalHandle, partition: number): number
  /** The largest payload of one record. */
  maxPayload(wal: WalHandle): number
  sync(wal: WalHandle): Promise<void>
  truncateAfter(wal: WalHandle, partition: number, lsn: number): Promise<void>
  purgeBefore(wal: WalHandle, partition: number, minLsn: number): Promise<PurgeResult>
  close(wal: WalHandle): Promise<void>
  firstLsn(wal: WalHandle, partition: number): number
  lastLsn(wal: WalHandle, partition: number): number
  partitions(wal: WalHandle): number[]
  segments(wal: WalHandle, partition: number): SegmentInfo[]
  stats(wal: WalHandle): WalStats
  /**
   * `id`: what the read notifier is called with when this reader has a batch for a caller that waits.
   * With `firstBytes` above 0 the first batch (at most `maxBytes`) is read too, ready for `readerTake`.
   */
  openReader(
    wal: WalHandle,
    id: number,
    partition: number,
    fromLsn: number,
    usePosition: boolean,
    segment: number,
    offset: number,
    firstBytes: number,
    maxBytes: number,
  ): Promise<ReaderHandle>
  /** Sets the callback told (by reader id) that a batch is ready after `readerTake` found none. */
  setReadNotifier(wal: WalHandle, callback: (id: number) => void): void
  /**
   * Reads ahead on the thread pool (after going back to LSN `rewind`, if not 0): batches of
   * `firstBytes` doubling up to `maxBytes`, until `depth` are ready, or one is while the
   * caller waits, or the reader caught up or failed. One at a time per reader.
   */
  readerFill(reader: ReaderHandle, firstBytes: number, maxBytes: number, depth: number, rewind: number): Promise<void>
  /** The next item read ahead, at once; throws the failure that stopped the reader; null when none is ready. */
  readerTake(reader: ReaderHandle): NativeBatch | null
  /** Drops what was read ahead; the LSN its first item started at (0: none). Only while no fill runs. */
  readerDiscard(reader: ReaderHandle): number
  readerRelease(reader: ReaderHandle): void
  /** Drains the reader through the engine alone, making no JS object per batch (for the bench). */
  readerScan(reader: ReaderHandle, maxBytes: number): Promise<ReadScan>
  /** Shrinks the batch memory pools once no reader has been open for a while; ms until it should be called again (0: done). */
  trimReadPools(): number
}

/** This machine as prebuilds name it: `linux-arm64`, plus the C library on Linux. */
function platformName(): string {
  const name = `${process.platform}-${process.arch}`
  if (process.platform !== 'linux') return name
  // node-gyp-build's own rule (a LIBC override, else Alpine means musl).
  return `${name} (${process.env.LIBC || (existsSync('/etc/alpine-release') ? 'musl' : 'glibc')})`
}

/** Why no addon loaded, in words a user on an unsupported platform can act on. */
function loadFailure(root: string, err: unknown): string {
  const cause = err instanceof Error ? err.message : String(err)
  const prebuilds = join(root, 'prebuilds')
  const shipped = existsSync(prebuilds) ? readdirSync(prebuilds).sort() : []
  const fromSource =
    'To use segwal here, build it from source: in a checkout of the segwal repository, with Rust ' +
    '(https://rustup.rs) installed, run `npm install` (it compiles the addon with cargo), then ' +
    '`npm pack`, and install the .tgz it writes. README.md, "Platforms", has the details.'
  if (!shipped.includes(`${process.platform}-${process.arch}`)) {
    return (
      `segwal has no prebuilt binary for ${platformName()}` +
      (shipped.length ? `; this package carries ${shipped.join(', ')}. ` : '. ') +
      `${fromSource} (node-gyp-build: ${cause})`
    )
  }
  return `segwal's prebuilt binary for ${platformName()} did not load: ${cause}. ${fromSource}`
}

function loadNative(): NativeBinding {
  const root = join(__dirname, '..')
  try {
    return nodeGypBuild(root) as NativeBinding
  } catch (err) {
    throw new Error(loadFailure(root, err), { cause: err })
  }
}

/** The loaded addon (this file compiles to `dist/binding.js`; the package root is one up). */
export const native = loadNative()

/**
 * Ack event encoding (see `take_acks` in src/acks.rs): partition, kind, count,
 * bytes, n, then n positions. The event settles the partition's next `count`
 * staged records (`bytes` of payload), in staging order.
 */
export const ACK_HEADER = 5
/** Ack event kind: records acknowledged; positions of the single appends among them. */
export const ACK_ACKED = 0
/** Ack event kind: records failed; error: the next of takeAckErrors. */
export const ACK_FAILED = 1
/** Numbers per acknowledged single append: lsn, segment, offset. */
export const POSITION_WIDTH = 3
