import { CLAIMED_ENDPOINT_COLUMNS, type ClaimedRow, type DeliveryRow, type EndpointParams, type EndpointRow } from '../sql/webhook-rows.js';
import { NOW_MS, sql } from './pg-db.js';

// The statements of PostgresWebhookStore. Schedule and lease times are the database server's
// clock (NOW_MS); lists take their cursor as a subquery, as statements.ts does: an `after` naming
// no row (or one outside the filter) gives an empty page.

const inProject = (a = ''): string => `(@project::text IS NULL OR ${a}project = @project)`;
const deliveryFilter = (a = ''): string =>
  `${inProject(a)} AND (@endpoint_id::text IS NULL OR ${a}endpoint_id = @endpoint_id) AND (@status::text IS NULL OR ${a}status = @status)`;
const endpointExists = (d: string): string => `EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.id = ${d}.endpoint_id)`;

interface ListParams {
  project: string | null;
  after: string | null;
  limit: number;
}

function listEndpoints(order: 'ASC' | 'DESC') {
  const cmp = order === 'ASC' ? '>' : '<';
  return sql<ListParams, EndpointRow>(
    `SELECT * FROM webhook_endpoints
     WHERE ${inProject()} AND (@after::text IS NULL OR seq ${cmp} (SELECT a.seq FROM webhook_endpoints a WHERE a.id = @after AND ${inProject('a.')}))
     ORDER BY seq ${order} LIMIT @limit`,
  );
}

type Fence = { id: string; owner: string; epoch: number };

export const WEBHOOKS = {
  // FOR SHARE: an endpoint being deleted is waited for (then skipped), so no delivery is queued to
  // an endpoint whose deletion commits before this write does.
  endpointsOfBatch: sql<{ batch_id: string }, { id: string; project: string; events: string | null }>(
    `SELECT e.id, e.project, e.events FROM webhook_endpoints e JOIN batches b ON b.project = e.project
     WHERE b.id = @batch_id ORDER BY e.seq FOR SHARE OF e`,
  ),
  insertDeliveries: sql<{ id: string[]; endpoint_id: string[]; project: string[]; event_id: string; type: string; payload: string; created_at: number }>(
    `INSERT INTO webhook_deliveries (id, event_id, endpoint_id, project, type, payload, created_at, next_attempt_at)
     SELECT u.id, @event_id::text, u.endpoint_id, u.project, @type::text, @payload::text, @created_at::bigint, ${NOW_MS}
     FROM unnest(@id::text[], @endpoint_id::text[], @project::text[]) AS u(id, endpoint_id, project)`,
  ),
  insertTest: sql<{ id: string; endpoint_id: string; event_id: string; type: string; payload: string; created_at: number }, DeliveryRow>(
    `INSERT INTO webhook_deliveries (id, event_id, endpoint_id, project, type, payload, created_at, next_attempt_at)
     SELECT @id::text, @event_id::text, e.id, e.project, @type::text, @payload::text, @created_at::bigint, ${NOW_MS}
     FROM webhook_endpoints e WHERE e.id = @endpoint_id
     RETURNING *`,
  ),

  insertEndpoint: sql<EndpointParams>(
    `INSERT INTO webhook_endpoints (id, project, url, events, secret, previous_secret, previous_secret_expires_at, created_at)
     VALUES (@id, @project, @url, @events, @secret, @previous_secret, @previous_secret_expires_at, @created_at)`,
  ),
  getEndpoint: sql<{ id: string }, EndpointRow>('SELECT * FROM webhook_endpoints WHERE id = @id'),
  listEndpointsAsc: listEndpoints('ASC'),
  listEndpointsDesc: listEndpoints('DESC'),
  deleteEndpoint: sql<{ id: string }>('DELETE FROM webhook_endpoints WHERE id = @id'),
  deleteDeliveriesOf: sql<{ endpoint_id: string }>('DELETE FROM webhook_deliveries WHERE endpoint_id = @endpoint_id'),
  rotate: sql<{ id: string; secret: string; expires_at: number }, EndpointRow>(
    `UPDATE webhook_endpoints SET previous_secret = secret, previous_secret_expires_at = @expires_at, secret = @secret
     WHERE id = @id RETURNING *`,
  ),

  // SKIP LOCKED: a delivery another replica is claiming right now is passed over, never waited
  // for; once its claim commits, its live lease keeps it out of every other claim.
  claim: sql<{ owner: string; lease_ms: number; limit: number }, ClaimedRow>(
    `WITH pick AS (
       SELECT d.id FROM webhook_deliveries d
       WHERE d.status = 'pending' AND d.next_attempt_at <= ${NOW_MS}
         AND (d.lease_owner IS NULL OR d.lease_expires_at <= ${NOW_MS}) AND ${endpointExists('d')}
       ORDER BY d.next_attempt_at, d.seq LIMIT @limit
       FOR UPDATE SKIP LOCKED),
     claimed AS (
       UPDATE webhook_deliveries d SET lease_owner = @owner, lease_epoch = d.lease_epoch + 1, lease_expires_at = ${NOW_MS} + @lease_ms::bigint
       FROM pick WHERE d.id = pick.id
       RETURNING d.*)
     SELECT c.*, ${CLAIMED_ENDPOINT_COLUMNS} FROM claimed c JOIN webhook_endpoints e ON e.id = c.endpoint_id
     ORDER BY c.next_attempt_at, c.seq`,
  ),
  record: sql<Fence & { status: string; last_status: number | null; last_error: string | null; retry_in_ms: number; delivered: number }>(
    `UPDATE webhook_deliveries SET attempts = attempts + 1, status = @status::text, last_status = @last_status::int, last_error = @last_error::text,
       next_attempt_at = CASE WHEN @status::text = 'pending' THEN ${NOW_MS} + @retry_in_ms::bigint ELSE next_attempt_at END,
       delivered_at = CASE WHEN @delivered::int = 1 THEN ${NOW_MS} / 1000 ELSE delivered_at END,
       lease_owner = NULL, lease_expires_at = NULL
     WHERE id = @id AND lease_owner = @owner AND lease_epoch = @epoch::int AND status = 'pending'`,
  ),
  release: sql<Fence>(
    `UPDATE webhook_deliveries SET lease_owner = NULL, lease_expires_at = NULL
     WHERE id = @id AND lease_owner = @owner AND lease_epoch = @epoch::int AND status = 'pending'`,
  ),
  // A delivery under a live lease is due when that lease would expire (its holder died), at the earliest.
  nextDue: sql<Record<never, never>, { in_ms: number }>(
    `WITH n AS (SELECT ${NOW_MS} AS now)
     SELECT GREATEST(0, MIN(CASE WHEN d.lease_owner IS NOT NULL AND d.lease_expires_at > n.now
                                 THEN GREATEST(d.next_attempt_at, d.lease_expires_at) ELSE d.next_attempt_at END) - n.now)::bigint AS in_ms
     FROM webhook_deliveries d, n
     WHERE d.status = 'pending' AND ${endpointExists('d')}
     GROUP BY n.now`,
  ),
  getDelivery: sql<{ id: string }, DeliveryRow>('SELECT * FROM webhook_deliveries WHERE id = @id'),
  listDeliveries: sql<ListParams & { endpoint_id: string | null; status: string | null }, DeliveryRow>(
    `SELECT * FROM webhook_deliveries
     WHERE ${deliveryFilter()}
       AND (@after::text IS NULL OR seq < (SELECT a.seq FROM webhook_deliveries a WHERE a.id = @after AND ${deliveryFilter('a.')}))
     ORDER BY seq DESC LIMIT @limit`,
  ),
  prune: sql<{ before: number }>(
    `DELETE FROM webhook_deliveries d
     WHERE (d.status <> 'pending' AND d.created_at < @before) OR NOT ${endpointExists('d')}`,
  ),
};
