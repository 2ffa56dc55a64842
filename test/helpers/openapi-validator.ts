/**
 * Holds the collector's answers to its OpenAPI document (collector/resources/openapi/): given
 * the request's method and URL and the answer's status, content type and body, it finds the
 * documented operation by its path template and checks that the status is documented, that the
 * content type is one documented for it, and, for JSON, that the body validates against the
 * documented schema (problems: the Problem schema with the operation's codes for that status),
 * with ajv's draft 2020-12 validator.
 *
 * A request outside the document (no path template matches, or the path has no such method)
 * may only get what the document's description promises for those: 404 `resource.not_found`,
 * 405 `method.not_allowed`, or 429 `rate.limited`. Anything else fails: the app answered
 * something the document does not describe.
 *
 * Paths match as express matches them (case-insensitive, an optional trailing slash).
 * `format` is not checked: zod writes a `pattern` next to every format it emits, and the
 * pattern is zod's own check.
 */
import { AssertionError } from 'node:assert';
import type { ValidateFunction } from 'ajv';
import Ajv2020 from 'ajv/dist/2020.js';
import { buildOpenApiDocument, type OpenApiDocument } from '../../collector/resources/openapi/document.ts';
import type { ProblemCode } from '../../shared/problem.ts';

export interface ObservedAnswer {
  method: string;
  url: string | URL;
  status: number;
  /** The Content-Type header, as answered (null if none). */
  contentType: string | null;
  /** The body as text. */
  text: string;
}

/** What a request outside the document may be answered with: status → code. */
const OUTSIDE_THE_DOCUMENT: { [status: number]: ProblemCode } = { 404: 'resource.not_found', 405: 'method.not_allowed', 429: 'rate.limited' };

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;
const DOCUMENT_ID = 'urn:sakshya:openapi';

type Json = { [key: string]: unknown };

interface PathTemplate {
  path: string;
  pattern: RegExp;
  operations: { [method: string]: Json };
}

/** RFC 6901. */
export function pointerSegment(text: string): string {
  return text.replaceAll('~', '~0').replaceAll('/', '~1');
}

function mediaTypeOf(contentType: string | null): string | undefined {
  return contentType?.split(';', 1)[0]!.trim().toLowerCase() || undefined;
}

function isJsonMediaType(type: string): boolean {
  return type === 'application/json' || type.endsWith('+json');
}

export class OpenApiValidator {
  readonly document: OpenApiDocument;
  readonly #ajv: Ajv2020;
  readonly #templates: PathTemplate[];
  readonly #compiled = new Map<string, ValidateFunction>();

  constructor(document: OpenApiDocument = buildOpenApiDocument()) {
    this.document = document;
    this.#ajv = new Ajv2020({ strict: true, allErrors: true, validateFormats: false });
    // The whole document under one id, so that every `#/components/...` reference resolves in
    // it; its own members are declared as keywords that check nothing (strict mode knows them).
    this.#ajv.addVocabulary(Object.keys(document));
    this.#ajv.addSchema({ ...document, $id: DOCUMENT_ID });
    this.#templates = Object.entries(document.paths).map(([path, operations]) => ({
      path,
      pattern: new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/\\\{[A-Za-z0-9_]+\\\}/g, '[^/]+')}/?$`, 'i'),
      operations,
    }));
  }

  /** The compiled schema at `pointer` (a JSON Pointer into the document, `#/…`). Throws if it does not compile or a reference does not resolve. */
  schemaAt(pointer: string): ValidateFunction {
    let validate = this.#compiled.get(pointer);
    if (!validate) {
      validate = this.#ajv.getSchema(`${DOCUMENT_ID}${pointer}`);
      if (!validate) throw new Error(`no schema at ${pointer}`);
      this.#compiled.set(pointer, validate);
    }
    return validate;
  }

  /** The path template `pathname` falls under, if any, and its operation for `method` (HEAD: GET's), if any. */
  find(method: string, pathname: string): { path?: string; methodKey?: string; operation?: Json } {
    const template = this.#templates.find((t) => t.pattern.test(pathname));
    if (!template) return {};
    const methodKey = method.toLowerCase() === 'head' && !template.operations.head ? 'get' : method.toLowerCase();
    const operation = template.operations[methodKey];
    return operation ? { path: template.path, methodKey, operation } : { path: template.path };
  }

  /** Every way `answer` departs from the document; empty if it conforms. */
  check(answer: ObservedAnswer): string[] {
    const url = new URL(answer.url);
    const method = answer.method.toUpperCase();
    const what = `${method} ${url.pathname} → ${answer.status}`;
    const { path, methodKey, operation } = this.find(method, url.pathname);
    const type = mediaTypeOf(answer.contentType);
    const parsed = () => {
      try {
        return { ok: true as const, value: JSON.parse(answer.text) as unknown };
      } catch {
        return { ok: false as const };
      }
    };

    if (!path || !methodKey || !operation) {
      const code = OUTSIDE_THE_DOCUMENT[answer.status];
      const where = path ? `${path} has no ${method} operation` : 'no path of the document matches';
      if (code === undefined || type !== 'application/problem+json') return [`${what}: ${where}, yet the answer is ${answer.status} ${type ?? '(no content type)'}`];
      const body = parsed();
      if (!body.ok) return [`${what}: ${where}; the problem body is not JSON`];
      if ((body.value as { code?: unknown }).code !== code) return [`${what}: ${where}; expected problem ${code}, got ${JSON.stringify((body.value as { code?: unknown }).code)}`];
      return this.#validate(`#/components/schemas/Problem`, body.value, what);
    }

    const responses = operation.responses as { [status: string]: { content?: { [type: string]: unknown } } };
    const response = responses[String(answer.status)];
    if (!response) return [`${what}: status ${answer.status} is not documented for ${method} ${path} (documented: ${Object.keys(responses).join(', ')})`];
    const content = response.content ?? {};
    if (Object.keys(content).length === 0) return answer.text === '' ? [] : [`${what}: the document promises no body`];
    if (method === 'HEAD') return [];
    if (type === undefined || !Object.hasOwn(content, type)) return [`${what}: content type ${type ?? '(none)'} is not documented (documented: ${Object.keys(content).join(', ')})`];
    if (!isJsonMediaType(type) || !(content[type] as { schema?: unknown }).schema) return [];
    const body = parsed();
    if (!body.ok) return [`${what}: the ${type} body is not JSON: ${answer.text.slice(0, 200)}`];
    const pointer = ['#', 'paths', pointerSegment(path), methodKey, 'responses', String(answer.status), 'content', pointerSegment(type), 'schema'].join('/');
    return this.#validate(pointer, body.value, what);
  }

  #validate(pointer: string, value: unknown, what: string): string[] {
    const validate = this.schemaAt(pointer);
    if (validate(value)) return [];
    return (validate.errors ?? []).slice(0, 10).map((error) => `${what}: ${error.instancePath || '(body)'} ${error.message ?? ''} ${JSON.stringify(error.params)} (schema ${pointer}${error.schemaPath.slice(1)})`);
  }

  /** Throws an AssertionError listing how `answer` departs from the document. */
  assert(answer: ObservedAnswer): void {
    const problems = this.check(answer);
    if (problems.length > 0) {
      throw new AssertionError({ message: `the answer does not conform to the OpenAPI document:\n  ${problems.join('\n  ')}\nbody: ${answer.text.slice(0, 500)}` });
    }
  }
}

/** Every HTTP method an OpenAPI path item may hold. */
export const OPENAPI_METHODS: readonly string[] = METHODS;

let shared: OpenApiValidator | undefined;

/** The validator of the collector's own document, built on first use. */
export function collectorApiValidator(): OpenApiValidator {
  shared ??= new OpenApiValidator();
  return shared;
}
