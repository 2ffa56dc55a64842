/**
 * The PostgreSQL migrations, in order (store/migrate.ts runs them). Version N is the same schema
 * as SQLite's version N, in PostgreSQL's types.
 */
import { latestVersion, type Migration } from '../migrate.ts';
import { migration as m0001 } from './migrations/0001-initial.ts';
import { migration as m0002 } from './migrations/0002-witness-reports.ts';
import { migration as m0003 } from './migrations/0003-agent-keys.ts';
import { migration as m0004 } from './migrations/0004-api-tokens.ts';
import { migration as m0005 } from './migrations/0005-report-jobs.ts';
import { migration as m0006 } from './migrations/0006-clock-skew.ts';
import { migration as m0007 } from './migrations/0007-ledger-kind-counts.ts';
import { migration as m0008 } from './migrations/0008-enrollment-authority.ts';
import { migration as m0009 } from './migrations/0009-report-retention.ts';
import { migration as m0010 } from './migrations/0010-agent-version.ts';
import { migration as m0011 } from './migrations/0011-collector-keys.ts';
import { migration as m0012 } from './migrations/0012-replica-coordination.ts';
import { migration as m0013 } from './migrations/0013-jti-request-key.ts';

export const POSTGRES_MIGRATIONS: readonly Migration[] = [m0001, m0002, m0003, m0004, m0005, m0006, m0007, m0008, m0009, m0010, m0011, m0012, m0013];
export const POSTGRES_SCHEMA_VERSION = latestVersion(POSTGRES_MIGRATIONS);
