/**
 * OpenAI's Uploads API (files larger than one request, sent in parts): the upload objects and
 * their parts. Part bytes live in the blob store (`blob-keys.ts` names their keys); the rows say
 * which parts exist and their sizes. Completing an upload records its File in the same write
 * (within the project's stored-bytes quota). Owned by `src/store/*-upload-*`.
 */
export interface UploadStore {
  // Filled in by the uploads work: create, get, add a part, list parts, complete (pending →
  // completed with the File inserted, quota-checked), cancel, and the uploads past their expiry.
  readonly ready: true;
}
