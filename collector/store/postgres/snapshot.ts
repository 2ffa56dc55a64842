/**
 * A read-only snapshot for an audit or a report export: one pooled connection holding one
 * `REPEATABLE READ READ ONLY` transaction, begun (and its snapshot taken) at open, ended at close.
 *
 * Streams are SQL cursors on that same connection (`DECLARE … NO SCROLL CURSOR`, then `FETCH
 * FORWARD n` per page), not a client-side cursor that would hold the connection until it is
 * read to the end: each FETCH is an ordinary statement, so any number of streams may be open
 * at once and point lookups run between their pages — all in the one transaction, so all see
 * the one snapshot. Memory stays at one page per open stream.
 */
import type { QueryResultRow } from 'pg';
import { checkout, query, type Client, type Pool } from './connection.ts';

/** Rows per FETCH: a round trip per page, and at most this many rows of a stream in memory. */
export const FETCH_ROWS = 256;

export class Snapshot {
  readonly #connection: { client: Client; release: (broken?: boolean) => void };
  #cursors = 0;
  #closed = false;

  private constructor(connection: { client: Client; release: (broken?: boolean) => void }) {
    this.#connection = connection;
  }

  /** Opens a snapshot on a connection of `pool`; the snapshot is the committed state at this call. */
  static async open(pool: Pool): Promise<Snapshot> {
    const connection = await checkout(pool);
    try {
      // A long audit is one transaction: the store's statement timeout is for requests, not for it.
      // The SELECT takes the transaction's snapshot now, not at the caller's first read.
      await query(connection.client, 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL statement_timeout = 0; SELECT 1');
    } catch (err) {
      connection.release(true);
      throw err;
    }
    return new Snapshot(connection);
  }

  async rows<R extends QueryResultRow>(sql: string, params: readonly unknown[] = []): Promise<R[]> {
    if (this.#closed) throw new Error('the snapshot is closed');
    return (await query<R>(this.#connection.client, sql, params)).rows;
  }

  async row<R extends QueryResultRow>(sql: string, params: readonly unknown[] = []): Promise<R | undefined> {
    return (await this.rows<R>(sql, params))[0];
  }

  /** Yields the mapped rows of `sql` page by page through a cursor of this snapshot. */
  async *stream<R extends QueryResultRow, T>(sql: string, params: readonly unknown[], map: (row: R) => T): AsyncGenerator<T> {
    const name = `sakshya_stream_${++this.#cursors}`;
    await this.rows(`DECLARE ${name} NO SCROLL CURSOR FOR ${sql}`, params);
    try {
      for (;;) {
        const page = await this.rows<R>(`FETCH FORWARD ${FETCH_ROWS} FROM ${name}`);
        for (const row of page) yield map(row);
        if (page.length < FETCH_ROWS) return;
      }
    } finally {
      if (!this.#closed) await this.rows(`CLOSE ${name}`).catch(() => {});
    }
  }

  /** Ends the transaction and returns the connection (discarded if the transaction cannot end cleanly). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.#connection.client.query('COMMIT');
      this.#connection.release();
    } catch {
      this.#connection.release(true);
    }
  }
}
