export { DestinationError, DestinationPolicy, MAX_URL_LENGTH, parseWebhookUrl, type Resolver } from './destination.js';
export { type PostResult, WebhookSender } from './deliver.js';
export { maxAttempts, nextStep } from './retry-schedule.js';
export { newWebhookSecret, sign, webhookHeaders } from './signing.js';
export { type WebhookLogger, WebhookWorker, type WebhookWorkerOptions } from './webhook-worker.js';
