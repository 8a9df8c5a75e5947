/**
 * BESH's extra batch fields expected_completion_at and deadline_at_risk: a running batch whose
 * rate will not finish it before expires_at is flagged, in the API and on the dashboard's list.
 */
import { describe, expect, it } from 'vitest';

import { chatLines, upload, waitFor } from '../helpers/batches.js';
import { stackFactory } from '../helpers/stack.js';

const setup = stackFactory('besh-deadline-', { MAX_WORKERS: '2' });

describe('deadline_at_risk', () => {
  it('flags a batch that cannot finish before its window ends, not one that will', async () => {
    const { client, besh } = await setup({ latencyMs: 200 });
    // 2 workers × 200 ms: 10 requests/s; 200 lines need ~20 s, the window is 8 s.
    const late = await client.batches.create({ input_file_id: await upload(client, chatLines(200, { prefix: 'late' })), endpoint: '/v1/chat/completions', completion_window: '8s' as '24h' });
    const early = await client.batches.create({ input_file_id: await upload(client, chatLines(20, { prefix: 'early' })), endpoint: '/v1/chat/completions', completion_window: '1h' as '24h' });
    const flagged = (await waitFor(client, late.id, (b) => (b as any).deadline_at_risk === true, 6_000)) as any;
    expect(flagged.status).toBe('in_progress');
    expect(flagged.expected_completion_at).toBeGreaterThan(flagged.expires_at);
    const onTime = (await client.batches.retrieve(early.id)) as any;
    expect(onTime.deadline_at_risk ?? false).toBe(false);
    // The dashboard's list carries it too.
    const page = (await (await fetch(`${besh.url}/v1/batches/dashboard?limit=10`)).json()) as { data: any[] };
    expect(page.data.find((b) => b.id === late.id)?.deadline_at_risk).toBe(true);
  });
});
