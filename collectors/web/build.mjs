// Builds the tag: pressmeter.js (+ src/) -> dist/pressmeter.min.js, one IIFE with
// no dependencies. Prints raw / minified / gzipped sizes and fails when the
// gzipped file is over the budget of 6 KB (6144 bytes).
//   node build.mjs [--outdir DIR]
import { readFileSync, mkdirSync, writeFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const at = process.argv.indexOf('--outdir');
const outdir = at > 0 ? process.argv[at + 1] : join(here, 'dist');
const LIMIT = 6144;

const result = await build({
  entryPoints: [join(here, 'pressmeter.js')],
  bundle: true,
  minify: true,
  format: 'iife',
  target: ['es2017', 'chrome64', 'firefox60', 'safari12'],
  legalComments: 'none',
  write: false,
});
const min = result.outputFiles[0].contents;
mkdirSync(outdir, { recursive: true });
const out = join(outdir, 'pressmeter.min.js');
writeFileSync(out, min);

const raw = [join(here, 'pressmeter.js'), ...readdirSync(join(here, 'src')).map((f) => join(here, 'src', f))]
  .reduce((n, f) => n + readFileSync(f).length, 0);
const gz = gzipSync(min, { level: 9 }).length;
console.log(`pressmeter.min.js: raw ${raw} B (sources), minified ${min.length} B, gzipped ${gz} B (limit ${LIMIT} B) -> ${out}`);
if (gz > LIMIT) {
  console.error(`build: error: gzipped size ${gz} B is over the ${LIMIT} B budget`);
  process.exit(1);
}
