import { Transform, type TransformCallback } from 'node:stream';

import { InsufficientStorageError } from '../domain/index.js';

/**
 * The free-space floor where blobs go (BESH_MIN_FREE_BYTES): an upload is refused before it
 * starts when its announced size would cross it, and stopped while it streams as soon as the
 * disk gets within one check interval of it — never left to fail half-written on a full disk.
 * A blob store without such a bound (S3: `freeBytes` null) never refuses.
 */
export class StorageFloor {
  constructor(
    readonly freeBytes: () => Promise<number | null>,
    readonly minFreeBytes: number,
    /** Bytes written between two free-space checks while streaming. */
    readonly checkEveryBytes = 1024 * 1024,
  ) {}

  /** Throws InsufficientStorageError when writing `moreBytes` would leave less than the floor. */
  async assertRoom(moreBytes: number): Promise<void> {
    const free = await this.freeBytes();
    if (free !== null && free - moreBytes < this.minFreeBytes) throw insufficientStorage(free, this.minFreeBytes);
  }

  /** A pass-through stream that re-checks the floor every `checkEveryBytes` (and fails the pipeline when crossed). */
  guard(): Transform {
    let sinceCheck = 0;
    return new Transform({
      transform: (chunk: Buffer, _enc: BufferEncoding, done: TransformCallback) => {
        sinceCheck += chunk.length;
        if (sinceCheck < this.checkEveryBytes) return done(null, chunk);
        sinceCheck = 0;
        // Room for the next interval too, so the floor is never crossed between two checks.
        this.assertRoom(this.checkEveryBytes).then(
          () => done(null, chunk),
          (err: unknown) => done(err as Error),
        );
      },
    });
  }
}

export const insufficientStorage = (free: number, floor: number): InsufficientStorageError =>
  new InsufficientStorageError(
    `Not enough free disk space to store this file: ${free} bytes free, and BESH keeps at least ${floor} bytes free (BESH_MIN_FREE_BYTES). Delete files or free space and retry.`,
    { param: 'file', code: 'insufficient_storage' },
  );
