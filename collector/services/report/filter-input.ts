/**
 * Turns what a person types (CLI flags) or sends (POST /api/v1/reports) into the normalised
 * ReportFilter of the manifest: bounds become UTC instants with millisecond precision. A date
 * ("2026-11-22") means 00:00 UTC of that day; a date-time needs `Z` or an offset, so nobody's
 * local time zone silently changes a report. Every problem is listed at once.
 */
import { z } from 'zod';
import { describeZodError } from '../../../shared/protocol.ts';
import { ProblemError } from '../../../shared/problem.ts';
import { RECORD_KINDS } from '../../../shared/record.ts';
import { agentGlobSchema, recordTypeSchema, reportFilterSchema, type ReportFilter } from '../../../shared/report/bundle-format.ts';

const DATE_ONLY = /^(\d{4})-(\d{2})-(\d{2})$/;

/** An ISO date or date-time (with Z or an offset, at most millisecond precision) → "…T…Z" UTC. */
export const dateInputSchema = z
  .string()
  .max(40)
  .transform((text, ctx) => {
    const day = DATE_ONLY.exec(text);
    if (day) {
      const iso = `${text}T00:00:00.000Z`;
      // Date.parse accepts 2026-02-31; the round trip does not.
      if (Number.isNaN(Date.parse(iso)) || new Date(iso).toISOString() !== iso) {
        ctx.addIssue({ code: 'custom', message: `${JSON.stringify(text)} is not a calendar date` });
        return z.NEVER;
      }
      return iso;
    }
    if (!z.iso.datetime({ offset: true, precision: undefined }).safeParse(text).success) {
      ctx.addIssue({ code: 'custom', message: `${JSON.stringify(text)} is not an ISO date (2026-11-22) or date-time with Z or an offset (2026-11-22T09:30:00+05:30)` });
      return z.NEVER;
    }
    const fraction = /\.(\d+)/.exec(text.slice(19))?.[1] ?? '';
    if (fraction.length > 3) {
      ctx.addIssue({ code: 'custom', message: `${JSON.stringify(text)} has more than millisecond precision` });
      return z.NEVER;
    }
    return new Date(text).toISOString();
  });

export const reportRequestSchema = z.strictObject({
  from: dateInputSchema,
  to: dateInputSchema,
  agent: agentGlobSchema.optional(),
  kind: z.enum(RECORD_KINDS).optional(),
  type: recordTypeSchema.optional(),
  checkpointSize: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
});
export type ReportRequestInput = z.input<typeof reportRequestSchema>;

export interface ReportRequest {
  filter: ReportFilter;
  /** undefined: the latest checkpoint. */
  checkpointSize: number | undefined;
}

/** Parses and normalises a report request; throws ProblemError `request.invalid` naming every problem. */
export function parseReportRequest(input: unknown): ReportRequest {
  const parsed = reportRequestSchema.safeParse(input);
  if (!parsed.success) throw new ProblemError('request.invalid', describeZodError(parsed.error));
  const filter = reportFilterSchema.safeParse({
    from: parsed.data.from,
    to: parsed.data.to,
    agent: parsed.data.agent ?? null,
    kind: parsed.data.kind ?? null,
    type: parsed.data.type ?? null,
  });
  if (!filter.success) throw new ProblemError('request.invalid', describeZodError(filter.error));
  return { filter: filter.data, checkpointSize: parsed.data.checkpointSize };
}
