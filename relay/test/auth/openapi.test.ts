/**
 * relay/openapi.yaml stays true to the code: it parses as OpenAPI 3.1, every $ref resolves, it documents every
 * route and error code, and live answers of the HTTP API match the documented response schemas (checked with a
 * small validator for the JSON Schema subset the document uses).
 */
import { readFile } from 'node:fs/promises';
import { ERROR_CODES } from '@scanrelay/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { gatewayActivation } from '../helpers/tokens.js';
import { type ApiFixture, apiFixture } from './http-fixture.js';

type Schema = Record<string, unknown>;
let doc: Schema;
let f: ApiFixture;

beforeAll(async () => {
  doc = parse(await readFile(new URL('../../openapi.yaml', import.meta.url), 'utf8')) as Schema;
  f = await apiFixture({ perIpPerMinute: 2 });
});
afterAll(async () => {
  await f.close();
});

function resolve(ref: string): Schema {
  expect(ref.startsWith('#/')).toBe(true);
  let node: unknown = doc;
  for (const part of ref.slice(2).split('/')) node = (node as Schema)?.[part];
  if (node === undefined) throw new Error(`unresolved $ref ${ref}`);
  return node as Schema;
}

/** Errors of `value` against `schema` (subset: $ref, const, enum, type, required, properties,
 *  additionalProperties: false, items, pattern, oneOf, type lists and null). Empty when valid. */
function validate(schema: Schema, value: unknown, at = '$'): string[] {
  if (typeof schema.$ref === 'string') return validate(resolve(schema.$ref), value, at);
  if (Array.isArray(schema.type)) {
    const each = schema.type.map((t) => validate({ ...schema, type: t }, value, at));
    return each.some((e) => e.length === 0) ? [] : each.flat();
  }
  const errors: string[] = [];
  if ('const' in schema && value !== schema.const) errors.push(`${at}: expected ${String(schema.const)}`);
  if (Array.isArray(schema.enum) && !schema.enum.includes(value)) errors.push(`${at}: ${String(value)} not in enum`);
  if (Array.isArray(schema.oneOf)) {
    const ok = schema.oneOf.filter((s) => validate(s as Schema, value, at).length === 0).length;
    if (ok !== 1) errors.push(`${at}: matches ${ok} of oneOf`);
  }
  const type = schema.type;
  if (type === 'object') {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return [...errors, `${at}: not an object`];
    const v = value as Record<string, unknown>;
    for (const r of (schema.required as string[] | undefined) ?? []) if (!(r in v)) errors.push(`${at}.${r}: missing`);
    const props = (schema.properties as Record<string, Schema> | undefined) ?? {};
    for (const [k, sub] of Object.entries(v)) {
      if (props[k]) errors.push(...validate(props[k], sub, `${at}.${k}`));
      else if (schema.additionalProperties === false) errors.push(`${at}.${k}: not documented`);
    }
  } else if (type === 'array') {
    if (!Array.isArray(value)) return [...errors, `${at}: not an array`];
    for (const [i, item] of value.entries()) errors.push(...validate(schema.items as Schema, item, `${at}[${i}]`));
  } else if (type === 'string') {
    if (typeof value !== 'string') errors.push(`${at}: not a string`);
    else if (typeof schema.pattern === 'string' && !new RegExp(schema.pattern).test(value)) {
      errors.push(`${at}: does not match ${schema.pattern}`);
    }
  } else if (type === 'integer' && !Number.isInteger(value)) errors.push(`${at}: not an integer`);
  else if (type === 'boolean' && typeof value !== 'boolean') errors.push(`${at}: not a boolean`);
  else if (type === 'null' && value !== null) errors.push(`${at}: not null`);
  return errors;
}

function responseSchema(path: string, method: string, status: number): Schema {
  const op = (doc.paths as Record<string, Record<string, Schema>>)[path]?.[method];
  expect(op, `${method} ${path} is documented`).toBeDefined();
  let response = (op!.responses as Record<string, Schema>)[String(status)];
  expect(response, `${method} ${path} documents ${status}`).toBeDefined();
  if (typeof response!.$ref === 'string') response = resolve(response!.$ref);
  return (response!.content as Record<string, { schema: Schema }>)['application/json']!.schema;
}

async function check(method: string, path: string, route: string, opts: Parameters<ApiFixture['call']>[2] = {}) {
  const r = await f.call(method.toUpperCase(), path, opts);
  expect(validate(responseSchema(route, method, r.status), r.body), `${method} ${path} → ${r.status}`).toEqual([]);
  return r;
}

describe('openapi.yaml', () => {
  it('is OpenAPI 3.1 and every $ref resolves', () => {
    expect(doc.openapi).toMatch(/^3\.1\./);
    const walk = (node: unknown): void => {
      if (Array.isArray(node)) for (const n of node) walk(n);
      else if (node && typeof node === 'object') {
        for (const [k, v] of Object.entries(node)) {
          if (k === '$ref') resolve(v as string);
          else walk(v);
        }
      }
    };
    walk(doc);
  });

  it('lists every protocol error code and the HTTP-only ones', () => {
    const codes = resolve('#/components/schemas/ErrorCode').enum as string[];
    for (const c of [...ERROR_CODES, 'not_found', 'conflict', 'unsupported_media_type', 'method_not_allowed']) {
      expect(codes).toContain(c);
    }
  });

  it('documents what the admin and activation endpoints actually answer', async () => {
    const created = await check('post', '/v1/admin/gateways', '/v1/admin/gateways', {
      admin: true,
      body: { site: 'site-a', name: 'Room 1' },
    });
    await check('post', '/v1/admin/gateways', '/v1/admin/gateways', { admin: true, body: { site: 'x', extra: 1 } });
    await check('post', '/v1/admin/gateways', '/v1/admin/gateways', { body: { site: 'site-a', name: 'x' } });
    const code = created.body.activationCode as string;
    await check('post', '/v1/activate', '/v1/activate', { body: { code, publicKey: { kty: 'oct' }, proof: 'x' } });
    await check('post', '/v1/activate', '/v1/activate', { body: (await gatewayActivation(code)).body });
    await check('post', '/v1/activate', '/v1/activate', { body: (await gatewayActivation(code)).body }); // 429
    await check('get', '/v1/admin/gateways', '/v1/admin/gateways', { admin: true });
    const id = created.body.gateway as string;
    const now = f.clock.now();
    await f.presence.claim({ gateway: id, site: 'site-a', node: 'n1', connection: 'c1', since: now }, 45_000);
    await f.presence.saveReport(id, {
      agent: { version: '0.1.0', transport: 'ws', startedAt: now },
      outbox: { pending: 1, oldestAt: now },
      peers: [{ aet: 'MG1', online: false, checkedAt: null }],
      clockSkewMs: -3,
      reportedAt: now,
    });
    const live = await check('get', '/v1/admin/gateways?online=true', '/v1/admin/gateways', { admin: true });
    expect((live.body.gateways as unknown[]).length).toBe(1);
    await check('get', '/v1/admin/gateways?online=maybe', '/v1/admin/gateways', { admin: true });
    await check('get', `/v1/admin/gateways/${id}`, '/v1/admin/gateways/{id}', { admin: true });
    await check('get', '/v1/admin/gateways/gw-none', '/v1/admin/gateways/{id}', { admin: true });
    await check('delete', `/v1/admin/gateways/${created.body.gateway as string}`, '/v1/admin/gateways/{id}', {
      admin: true,
    });
    await check('delete', '/v1/admin/gateways/gw-none', '/v1/admin/gateways/{id}', { admin: true });
    await check('post', '/v1/admin/sessions/sid-1/revoke', '/v1/admin/sessions/{sid}/revoke', { admin: true });
  });
});
