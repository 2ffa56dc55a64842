/**
 * The OpenAPI document (collector/resources/openapi/) is a well-formed OpenAPI 3.1 description:
 * every operation has responses, every reference resolves, every schema compiles with ajv's
 * draft 2020-12 validator (strict), the roles are ROUTE_ACCESS's, and the problems are the
 * catalogue's with their own statuses. That the app serves exactly these operations is
 * test/integration/collector/openapi.test.ts.
 */
import assert from 'node:assert/strict';
import { buildOpenApiDocument, operationOf, type OpenApiDocument } from '../../../collector/resources/openapi/document.ts';
import { ROUTES } from '../../../collector/resources/openapi/routes.ts';
import { ROUTE_ACCESS } from '../../../collector/services/access.ts';
import { fleetAgentDetailSchema, fleetListSchema } from '../../../shared/api-schemas.ts';
import { packageVersion } from '../../../shared/package-version.ts';
import { PROBLEMS, isProblemCode } from '../../../shared/problem.ts';
import { OPENAPI_METHODS, OpenApiValidator, pointerSegment } from '../../helpers/openapi-validator.ts';

type Json = { [key: string]: unknown };

function operationsOf(document: OpenApiDocument): { path: string; method: string; operation: Json }[] {
  return Object.entries(document.paths).flatMap(([path, item]) => Object.entries(item).map(([method, operation]) => ({ path, method, operation })));
}

/** Every `$ref` in `node`, with the JSON Pointer of where it is. */
function refsIn(node: unknown, at = '#'): { at: string; ref: string }[] {
  if (Array.isArray(node)) return node.flatMap((item, i) => refsIn(item, `${at}/${i}`));
  if (node === null || typeof node !== 'object') return [];
  return Object.entries(node).flatMap(([key, value]) =>
    key === '$ref' && typeof value === 'string' ? [{ at, ref: value }] : refsIn(value, `${at}/${pointerSegment(key)}`),
  );
}

function resolvePointer(document: unknown, pointer: string): unknown {
  assert.ok(pointer.startsWith('#/'), `${pointer} is not a local JSON Pointer`);
  return pointer
    .slice(2)
    .split('/')
    .map((segment) => segment.replaceAll('~1', '/').replaceAll('~0', '~'))
    .reduce<unknown>((node, segment) => (node !== null && typeof node === 'object' ? (node as Json)[segment] : undefined), document);
}

/** JSON Pointers of every schema in the document: components, parameters, request and response bodies. */
function schemaPointers(document: OpenApiDocument): string[] {
  const pointers = Object.keys(document.components.schemas).map((name) => `#/components/schemas/${pointerSegment(name)}`);
  for (const { path, method, operation } of operationsOf(document)) {
    const base = `#/paths/${pointerSegment(path)}/${method}`;
    ((operation.parameters ?? []) as Json[]).forEach((_p, i) => pointers.push(`${base}/parameters/${i}/schema`));
    const body = operation.requestBody as { content: Json } | undefined;
    for (const type of Object.keys(body?.content ?? {})) pointers.push(`${base}/requestBody/content/${pointerSegment(type)}/schema`);
    for (const [status, response] of Object.entries(operation.responses as { [status: string]: { content?: { [type: string]: { schema?: unknown } } } })) {
      for (const [type, media] of Object.entries(response.content ?? {})) {
        if (media.schema !== undefined) pointers.push(`${base}/responses/${status}/content/${pointerSegment(type)}/schema`);
      }
    }
  }
  return pointers;
}

describe('the OpenAPI document', () => {
  const document = buildOpenApiDocument();
  const operations = operationsOf(document);

  it('is OpenAPI 3.1 with the JSON Schema 2020-12 dialect, versioned as the package, with relative paths', () => {
    assert.match(document.openapi, /^3\.1\.\d+$/);
    assert.equal(document.jsonSchemaDialect, 'https://json-schema.org/draft/2020-12/schema');
    assert.equal(document.info.version, packageVersion());
    assert.ok(document.info.title.length > 0);
    assert.equal((document as unknown as Json).servers, undefined);
    for (const path of Object.keys(document.paths)) assert.match(path, /^\/[A-Za-z0-9._/{}-]*$/, path);
    assert.deepEqual(JSON.parse(JSON.stringify(document)), document, 'plain JSON');
  });

  it('gives every operation a unique operationId, a summary, its path parameters and documented responses', () => {
    assert.ok(operations.length >= 18, `${operations.length} operations`);
    const ids = operations.map(({ operation }) => operation.operationId);
    assert.equal(new Set(ids).size, ids.length);
    for (const { path, method, operation } of operations) {
      const where = `${method.toUpperCase()} ${path}`;
      assert.ok(OPENAPI_METHODS.includes(method), where);
      assert.equal(typeof operation.summary, 'string', where);
      const responses = operation.responses as { [status: string]: { description?: unknown } };
      assert.ok(Object.keys(responses).length > 0, `${where} has no responses`);
      for (const [status, response] of Object.entries(responses)) {
        assert.match(status, /^[1-5][0-9][0-9]$/, where);
        assert.equal(typeof response.description, 'string', `${where} ${status}`);
      }
      assert.ok(Object.keys(responses).some((status) => status.startsWith('2')), `${where} has no success answer`);
      const templated = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]).sort();
      const declared = ((operation.parameters ?? []) as { in: string; name: string; required: boolean }[]).filter((p) => p.in === 'path');
      assert.deepEqual(declared.map((p) => p.name).sort(), templated, `${where}: path parameters`);
      assert.ok(declared.every((p) => p.required === true), `${where}: path parameters are required`);
    }
  });

  it('resolves every $ref', () => {
    const refs = refsIn(document);
    assert.ok(refs.length > 40, `${refs.length} references`);
    for (const { at, ref } of refs) assert.notEqual(resolvePointer(document, ref), undefined, `${ref} (at ${at}) does not resolve`);
  });

  it('has schemas that all compile with ajv (draft 2020-12, strict)', () => {
    const validator = new OpenApiValidator(document);
    const pointers = schemaPointers(document);
    assert.ok(pointers.length > 100, `${pointers.length} schemas`);
    for (const pointer of pointers) assert.doesNotThrow(() => validator.schemaAt(pointer), pointer);
  });

  it('documents exactly the routes of ROUTE_ACCESS with its roles as security requirements', () => {
    const documented = operations.map(({ path, method }) => `${method.toUpperCase()} ${path}`).sort();
    const declared = Object.keys(ROUTE_ACCESS).map((route) => {
      const { method, path } = operationOf(route);
      return `${method.toUpperCase()} ${path}`;
    });
    assert.deepEqual(documented, declared.sort());
    const schemes = document.components.securitySchemes as { [name: string]: { type: string; scheme: string } };
    for (const [route, access] of Object.entries(ROUTE_ACCESS)) {
      const { method, path } = operationOf(route);
      const operation = document.paths[path]![method]!;
      assert.deepEqual(operation['x-sakshya-roles'], access === 'public' ? ['public'] : [...access], route);
      const security = operation.security as { [scheme: string]: string[] }[];
      if (access === 'public') {
        assert.deepEqual(security, [], route);
        continue;
      }
      const expected = new Set(access.map((role) => (role === 'agent' ? 'agentJwt' : 'apiToken')));
      assert.deepEqual(new Set(security.flatMap((requirement) => Object.keys(requirement))), expected, route);
      for (const name of expected) assert.equal(schemes[name]?.scheme, 'bearer', name);
    }
  });

  it('answers problems as application/problem+json, each status with the catalogue codes of that status, and 500 on every route', () => {
    for (const { path, method, operation } of operations) {
      const where = `${method.toUpperCase()} ${path}`;
      const responses = operation.responses as { [status: string]: { content: { [type: string]: { schema: Json } } } };
      assert.ok(responses['500'], `${where} has no 500`);
      for (const [status, response] of Object.entries(responses)) {
        if (Number(status) < 400) continue;
        assert.deepEqual(Object.keys(response.content), ['application/problem+json'], `${where} ${status}`);
        const schema = response.content['application/problem+json']!.schema as { $ref: string; properties: { status: { const: number }; code: { enum: string[] } } };
        assert.equal(schema.$ref, '#/components/schemas/Problem');
        assert.equal(schema.properties.status.const, Number(status));
        assert.ok(schema.properties.code.enum.length > 0);
        for (const code of schema.properties.code.enum) {
          assert.ok(isProblemCode(code), `${where}: ${code} is not in the catalogue`);
          assert.equal(PROBLEMS[code].status, Number(status), `${where}: ${code}`);
        }
      }
    }
    const problem = document.components.schemas.Problem as { properties: { code: { enum: string[] } } };
    assert.deepEqual([...problem.properties.code.enum].sort(), Object.keys(PROBLEMS).sort());
  });

  it('validates answers against the document: a conforming one passes, a wrong body, status or problem code fails', () => {
    const validator = new OpenApiValidator(document);
    const url = 'http://127.0.0.1/api/v1/records/0192f7b4-0000-7000-8000-00000000abcd';
    const problem = (code: string, status: number) => JSON.stringify({ type: `urn:sakshya:problem:${code}`, title: 't', status, detail: 'd', code });
    const answer = (status: number, contentType: string, text: string) => ({ method: 'GET', url, status, contentType, text });
    assert.deepEqual(validator.check(answer(401, 'application/problem+json', problem('auth.invalid_token', 401))), []);
    assert.equal(validator.check(answer(409, 'application/problem+json', problem('batch.out_of_order', 409))).length, 1, 'an undocumented status');
    assert.ok(validator.check(answer(403, 'application/problem+json', problem('report.busy', 403))).length > 0, 'a code of another route');
    assert.ok(validator.check(answer(200, 'application/json', '{"record":{},"ledgerIndex":0}')).length > 0, 'a wrong body');
    assert.ok(validator.check(answer(200, 'text/plain', 'x')).length > 0, 'an undocumented content type');
    assert.deepEqual(validator.check({ method: 'GET', url: 'http://127.0.0.1/api/v1/none', status: 404, contentType: 'application/problem+json', text: problem('resource.not_found', 404) }), []);
    assert.ok(validator.check({ method: 'GET', url: 'http://127.0.0.1/api/v1/none', status: 200, contentType: 'application/json', text: '{}' }).length > 0, 'an answer outside the document');
    assert.deepEqual(validator.check({ method: 'PUT', url: 'http://127.0.0.1/api/v1/keys', status: 405, contentType: 'application/problem+json', text: problem('method.not_allowed', 405) }), []);
  });

  it('names the fleet schemas the fleet routes answer with', () => {
    assert.equal(ROUTES['GET /api/v1/agents'].responses[200].json, fleetListSchema);
    assert.equal(ROUTES['GET /api/v1/agents/:id'].responses[200].json, fleetAgentDetailSchema);
  });
});
