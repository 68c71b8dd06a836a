// Prints the production bundle's size, raw and gzip-compressed (what `ordexa web` sends to a
// browser that accepts gzip). Run after `npm run build`.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

const dir = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..', 'dist');
const files = ['index.html', ...readdirSync(join(dir, 'assets')).map((f) => join('assets', f))];
let raw = 0;
let gzip = 0;
for (const file of files) {
  const bytes = readFileSync(join(dir, file));
  const zipped = gzipSync(bytes).length;
  raw += bytes.length;
  gzip += zipped;
  console.log(`${file.padEnd(36)} ${(bytes.length / 1024).toFixed(1).padStart(8)} kB  gzip ${(zipped / 1024).toFixed(1).padStart(7)} kB`);
}
console.log(`${'total'.padEnd(36)} ${(raw / 1024).toFixed(1).padStart(8)} kB  gzip ${(gzip / 1024).toFixed(1).padStart(7)} kB`);
