/**
 * One checkpoints row of `ledger verify`, met in the record pass when the recomputed tree reaches
 * its size. The signed note is the authority (nobody can forge it without the log key): a root
 * column that differs from it is the checkpoint row's fault; a signed root that differs from the
 * root recomputed from the records is the records' fault, reported once per run of broken
 * checkpoints with the range where the change must lie.
 */
import { CheckpointError, verifyCheckpoint, type Checkpoint } from '../../../shared/checkpoint.ts';
import { NoteError, type NoteVerifier } from '../../../shared/signed-note.ts';
import type { AuditCheckpointRow } from '../../store/store.ts';
import { hex, type Findings } from './findings.ts';

/** How far the records agree with the signed checkpoints. */
export interface SignedPrefix {
  /** The largest checkpoint size so far whose signed root the records reproduce. */
  goodSize: number;
  /** True while checkpoints disagree (only the first of a run is reported). */
  broken: boolean;
}

/** The log's identity: what every checkpoint note MUST verify against. */
export interface LogIdentity {
  origin: string;
  logVerifier: NoteVerifier;
}

/** Checks one checkpoint row against its signed note and the root of the first `row.size` leaves (`truthRoot`). */
export function checkCheckpointRow(row: AuditCheckpointRow, truthRoot: Buffer, signed: SignedPrefix, log: LogIdentity, findings: Findings): void {
  const ref = { size: row.size };
  const rootColumn = Buffer.isBuffer(row.root) ? row.root : Buffer.alloc(0);
  let note: Checkpoint | undefined;
  try {
    note = verifyCheckpoint(row.note, log.logVerifier, log.origin);
  } catch (err) {
    if (err instanceof NoteError) {
      findings.add({ table: 'checkpoints', row: ref, check: 'signature', message: `the note does not verify with the log key: ${err.message}` });
    } else if (err instanceof CheckpointError) {
      findings.add({ table: 'checkpoints', row: ref, check: 'note', message: `the signed note is not a valid checkpoint of this log: ${err.message}` });
    } else {
      throw err;
    }
  }
  if (note !== undefined && note.size !== row.size) {
    findings.add({ table: 'checkpoints', row: ref, check: 'note_size', message: 'the signed note is for another size', expected: String(row.size), found: String(note.size) });
    note = undefined;
  }
  if (note === undefined) {
    if (!rootColumn.equals(truthRoot)) {
      findings.add({ table: 'checkpoints', row: ref, check: 'root', message: `root is not the Merkle root of the first ${row.size} ledger entries`, expected: hex(truthRoot), found: hex(rootColumn) });
    }
    return;
  }
  if (!rootColumn.equals(note.rootHash)) {
    findings.add({ table: 'checkpoints', row: ref, check: 'root', message: 'root differs from the root in the signed note', expected: hex(note.rootHash), found: hex(rootColumn) });
  }
  if (note.rootHash.equals(truthRoot)) {
    signed.goodSize = row.size;
    signed.broken = false;
  } else if (!signed.broken) {
    signed.broken = true;
    findings.add({
      table: 'records',
      row: { ledger_index: signed.goodSize },
      check: 'signed_root',
      message:
        `the first ${row.size} ledger entries do not hash to the root signed in checkpoint ${row.size}: an entry in ` +
        `${signed.goodSize}…${row.size - 1} was changed, moved, inserted or deleted after it was signed`,
      expected: hex(note.rootHash),
      found: hex(truthRoot),
    });
  }
}
