import { cpus } from 'node:os';

export interface ResultRow {
  /** Scenario name and its size, e.g. "throughput (50,000 requests, …)". */
  scenario: string;
  /** The measured figure(s), already formatted. */
  figure: string;
  target: string;
  pass: boolean;
}

export const rowLine = (r: ResultRow): string => `${r.pass ? 'PASS' : 'FAIL'}  ${r.scenario}: ${r.figure} (target ${r.target})`;

const cell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

export function markdownTable(rows: readonly ResultRow[]): string {
  const lines = ['| Scenario | Figure | Target | Result |', '| --- | --- | --- | --- |'];
  for (const r of rows) lines.push(`| ${cell(r.scenario)} | ${cell(r.figure)} | ${cell(r.target)} | ${r.pass ? 'pass' : '**FAIL**'} |`);
  return lines.join('\n');
}

/** What the figures were measured on, printed above the table. */
export function machineLine(quick: boolean): string {
  const cpu = cpus();
  const model = cpu[0]?.model.trim() ?? 'unknown CPU';
  const date = new Date().toISOString().slice(0, 10);
  return `Node ${process.version}, ${cpu.length} × ${model}, ${date}${quick ? ', --quick (sizes ÷ 10)' : ''}. 1 MB = 10^6 bytes.`;
}
