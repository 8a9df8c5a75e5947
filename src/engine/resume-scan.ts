import { emptyUsage, type Usage } from '../domain/index.js';
import { addUsage, scanResultLines } from '../jsonl/index.js';
import type { ShardFence } from '../store/meta-store.js';
import type { EngineContext } from './engine-context.js';
import { usageOfOutputLine } from './response-usage.js';
import { LeaseLostError } from './shard-results.js';

export interface ShardResume {
  /** custom_ids with a result line already: never sent again. */
  done: Set<string>;
  completed: number;
  failed: number;
  usage: Usage;
}

/**
 * What the shard's earlier leases left (a crash, a kill, a takeover): every registered segment of
 * the shard, of every epoch, read to its last complete line. A segment registered before its
 * first line (local disk) gets its final size recorded here, under the new lease, so that
 * finalizing knows where its torn tail starts.
 */
export async function scanShardResults(ctx: EngineContext, fence: ShardFence): Promise<ShardResume> {
  const { store, blobs } = ctx;
  const done = new Set<string>();
  const usage = emptyUsage();
  let completed = 0;
  let failed = 0;
  for (const seg of await store.listSegments(fence.batchId, { shardNo: fence.shardNo })) {
    if (seg.bytes === 0) continue;
    const output = seg.kind === 'output';
    const source = blobs.openRead(seg.blobKey, seg.bytes === null ? {} : { end: seg.bytes - 1 });
    let scan;
    try {
      scan = await scanResultLines(source, output ? (text) => addUsageOf(usage, text) : undefined);
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'ENOENT') throw err;
      scan = { lines: 0, completeBytes: 0, customIds: new Set<string>() };
    }
    for (const id of scan.customIds) done.add(id);
    if (output) completed += scan.lines;
    else failed += scan.lines;
    if (seg.bytes === null && !(await store.sealSegment(fence, seg.blobKey, scan.lines, scan.completeBytes))) throw new LeaseLostError(fence);
  }
  return { done, completed, failed, usage };
}

function addUsageOf(total: Usage, text: string): void {
  const u = usageOfOutputLine(text);
  if (u) addUsage(total, u);
}
