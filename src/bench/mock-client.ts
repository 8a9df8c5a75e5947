import { postJson, requestJson } from './http.js';

/** The parts of the mock's `GET /mock/stats` the benchmark reads. */
export interface MockStatsView {
  total_requests: number;
  max_in_flight: number;
  responses_by_status: Record<string, number>;
}

export const mockStats = (mockUrl: string): Promise<MockStatsView> => requestJson<MockStatsView>(`${mockUrl}/mock/stats`);

/** Zeroes the counters and the per-request-key map (which grows with every request key seen). */
export const mockReset = async (mockUrl: string): Promise<void> => {
  await postJson<unknown>(`${mockUrl}/mock/reset`, {});
};
