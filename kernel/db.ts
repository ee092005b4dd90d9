import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type Database from 'better-sqlite3';

import { requireCjs } from './cjs.js';

/**
 * Open the edge's SQLite database. WAL journal with synchronous=NORMAL: every committed
 * transaction survives a kill -9 of the process (only a power cut may lose the last ones).
 * better-sqlite3 is loaded here, on first use, so a node without a database plugin never loads it.
 */
export function openDatabase(dataSource: string): Database.Database {
  if (dataSource !== ':memory:') mkdirSync(dirname(dataSource), { recursive: true });
  const Driver = requireCjs('better-sqlite3') as typeof Database;
  const db = new Driver(dataSource);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  db.pragma('foreign_keys = ON');
  return db;
}
