/**
 * Kubernetes manifest checks for deploy/k8s, using the schemas and types shipped in the `kubernetes-models`
 * npm package (generated from the Kubernetes OpenAPI spec):
 *
 * - `validateWithSchema`: the package's JSON-schema validation (types, required fields, formats, enums).
 * - `typeCheckManifests`: the package's TypeScript interfaces, via the TypeScript compiler's excess-property
 *   check — this catches unknown or misspelt fields (`readinesProbe:`), which the JSON schemas let through but
 *   `kubectl apply` (strict field validation) refuses.
 *
 * Manifests are parsed as YAML 1.1, the dialect Kubernetes reads (so `0444` is octal and an unquoted `off`
 * is a boolean, exactly as kubectl would see them).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { parseAllDocuments } from 'yaml';
import { REPO_ROOT } from './compose.js';

/** One document of one manifest file. */
export interface Manifest {
  file: string;
  /** 0-based index of the document within the file. */
  index: number;
  apiVersion: string;
  kind: string;
  name: string;
  doc: Record<string, unknown>;
}

/** Parse every YAML document of `files` (YAML 1.1). Throws on a YAML error, naming file and position. */
export function readManifests(files: readonly string[]): Manifest[] {
  const out: Manifest[] = [];
  for (const file of files) {
    const docs = parseAllDocuments(readFileSync(file, 'utf8'), { version: '1.1', prettyErrors: true });
    const list = Array.isArray(docs) ? docs : [docs];
    list.forEach((d, index) => {
      if (d.errors.length > 0) throw new Error(`${file} document ${index}: ${d.errors[0]?.message}`);
      const doc = d.toJS() as Record<string, unknown> | null;
      if (doc === null) return;
      const metadata = (doc.metadata ?? {}) as { name?: string };
      out.push({
        file,
        index,
        apiVersion: String(doc.apiVersion),
        kind: String(doc.kind),
        name: String(metadata.name),
        doc,
      });
    });
  }
  return out;
}

/** `*.yaml` files directly in `dir`, sorted. */
export function yamlFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml') || f.endsWith('.yml'))
    .sort()
    .map((f) => join(dir, f));
}

/** Module of `kubernetes-models` holding the model for an apiVersion/kind (core `v1` → `v1/<Kind>`). */
export function modelModule(apiVersion: string, kind: string): string {
  return `kubernetes-models/${apiVersion}/${kind}`;
}

interface ModelClass {
  new (data: unknown): { validate(): void };
}

/** Validate a manifest with the package's JSON schema. Returns the error text, or undefined when valid. */
export async function validateWithSchema(m: Manifest): Promise<string | undefined> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(modelModule(m.apiVersion, m.kind))) as Record<string, unknown>;
  } catch {
    return `no Kubernetes model for apiVersion ${m.apiVersion} kind ${m.kind} (misspelt, or not a built-in kind)`;
  }
  const Model = mod[m.kind] as ModelClass | undefined;
  if (typeof Model !== 'function') return `kubernetes-models has no class ${m.kind} in ${m.apiVersion}`;
  try {
    new Model(m.doc).validate();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/**
 * Type-check every manifest against `kubernetes-models`' interfaces as an object literal, so excess
 * (unknown) properties are errors. Returns one message per problem: `file#doc: message`.
 */
export function typeCheckManifests(manifests: readonly Manifest[]): string[] {
  // A virtual file inside the repository, so `kubernetes-models` resolves from the root node_modules.
  const virtual = join(REPO_ROOT, 'deploy', 'test', '__k8s_manifests__.ts');
  const lines: string[] = [];
  const origin = new Map<number, string>();
  manifests.forEach((m, i) => {
    const iface = `I${m.kind}`;
    lines.push(`import type { ${iface} as T${i} } from '${modelModule(m.apiVersion, m.kind)}';`);
  });
  manifests.forEach((m, i) => {
    origin.set(lines.length, `${relative(REPO_ROOT, m.file)}#${m.index} (${m.kind} ${m.name})`);
    lines.push(`export const m${i}: T${i} = ${JSON.stringify(m.doc)};`);
  });
  const source = lines.join('\n');
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
  };
  const host = ts.createCompilerHost(options, true);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (fileName, languageVersion, onError, shouldCreate) =>
    fileName === virtual
      ? ts.createSourceFile(fileName, source, languageVersion, true)
      : getSourceFile(fileName, languageVersion, onError, shouldCreate);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (fileName) => fileName === virtual || fileExists(fileName);
  const readFile = host.readFile.bind(host);
  host.readFile = (fileName) => (fileName === virtual ? source : readFile(fileName));
  const program = ts.createProgram([virtual], options, host);
  const diagnostics = ts.getPreEmitDiagnostics(program).filter((d) => d.file?.fileName === virtual);
  return diagnostics.map((d) => {
    const line = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line : -1;
    const where = origin.get(line) ?? `line ${line + 1}`;
    return `${where}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`;
  });
}
