export { isBlankLine } from './blank-line.js';
export { JsonlError, type JsonlErrorCode } from './errors.js';
export { LineScanner, type LineSink } from './line-scanner.js';
export { type RawLine, readLineBatches, readLines, type ReadLinesOptions } from './line-splitter.js';
export { decodeInput, type DecodeInputOptions } from './open-input.js';
export {
  type BatchRequestLine,
  MAX_CUSTOM_ID_LENGTH,
  type ValidationContext,
  type ValidationOutcome,
  validateRequestLine,
} from './request-validator.js';
export { type ResultLinesScan, scanResultLines } from './result-file.js';
export { errorLine, httpErrorLine, successLine } from './result-line.js';
export { UploadChecker, type UploadCheckerOptions } from './upload-checker.js';
export { addUsage, factsOfBody, usageFromObject, usageOfBody } from './usage.js';
export { FingerprintSet } from './fingerprint-set.js';
