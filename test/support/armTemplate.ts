/**
 * A query layer over a compiled ARM template (what `bicep build` emits and Azure Resource Manager deploys): its
 * resources, its nested deployments (Bicep modules, with the parameters passed to them), and an evaluator for
 * ARM template expressions (`[format('{0}', parameters('x'))]`). What the evaluator can fold (literals, params
 * with defaults, variables, string and logic functions) becomes a plain value; what only exists at deployment
 * (outputs of other deployments, resource ids, `subscription()`, `guid()`, `copyIndex()`) becomes an
 * {@link ArmUnknown} whose text reads like the Bicep it came from (`appIdentity.outputs.clientId`).
 */

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

/** A value known only at deployment time, described by text. */
export class ArmUnknown {
    constructor(readonly text: string) {}
    toString(): string {
        return this.text;
    }
}

/** A resource id built by resourceId() / extensionResourceId() / subscriptionResourceId(). */
export class ArmResourceId extends ArmUnknown {
    constructor(
        readonly resourceType: string,
        readonly names: ArmValue[],
    ) {
        super(`${resourceType}/${names.map(describe).join('/')}`);
    }
}

/** `reference(<deployment id>)`: what a module's outputs are read from. */
class ArmModuleReference extends ArmUnknown {
    constructor(readonly moduleName: string) {
        super(`${moduleName}`);
    }
}

export type ArmValue = null | boolean | number | string | ArmValue[] | { [key: string]: ArmValue } | ArmUnknown;

export function isArmObject(value: unknown): value is { [key: string]: ArmValue } {
    return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof ArmUnknown);
}

/** Readable text of any value: literals as JSON-ish, unknowns by their text. */
export function describe(value: ArmValue | undefined): string {
    if (value === undefined) return '';
    if (value instanceof ArmUnknown) return value.text;
    if (typeof value === 'string') return value;
    if (value === null || typeof value !== 'object') return String(value);
    if (Array.isArray(value)) return `[${value.map(describe).join(', ')}]`;
    return `{ ${Object.entries(value)
        .map(([k, v]) => `${k}: ${describe(v)}`)
        .join(', ')} }`;
}

// ---- expression syntax ----

type Expr =
    | { kind: 'string'; value: string }
    | { kind: 'number'; value: number }
    | { kind: 'call'; name: string; args: Expr[] }
    | { kind: 'property'; target: Expr; name: string }
    | { kind: 'index'; target: Expr; index: Expr };

class ExpressionParser {
    private at = 0;
    constructor(private readonly source: string) {}

    static parse(source: string): Expr {
        const parser = new ExpressionParser(source);
        const expr = parser.expression();
        parser.skipSpace();
        if (parser.at !== source.length) throw new Error(`unexpected ${source.slice(parser.at)} in [${source}]`);
        return expr;
    }

    private skipSpace(): void {
        while (this.at < this.source.length && /\s/.test(this.source[this.at]!)) this.at++;
    }

    private expect(char: string): void {
        this.skipSpace();
        if (this.source[this.at] !== char) throw new Error(`expected ${char} at ${this.at} in [${this.source}]`);
        this.at++;
    }

    private expression(): Expr {
        let expr = this.primary();
        for (;;) {
            this.skipSpace();
            const next = this.source[this.at];
            if (next === '.') {
                this.at++;
                expr = { kind: 'property', target: expr, name: this.identifier() };
            } else if (next === '[') {
                this.at++;
                const index = this.expression();
                this.expect(']');
                expr = { kind: 'index', target: expr, index };
            } else if (next === '?' && this.source[this.at + 1] === '.') {
                // Safe access (`a.?b`) reads the same for our purposes.
                this.at += 2;
                expr = { kind: 'property', target: expr, name: this.identifier() };
            } else {
                return expr;
            }
        }
    }

    /** A property name, or (with dots) a function name such as a user-defined `__bicep.fn`. */
    private identifier(dotted = false): string {
        this.skipSpace();
        const match = (dotted ? /^[A-Za-z_$][\w$#.]*/ : /^[A-Za-z_$][\w$#]*/).exec(this.source.slice(this.at));
        if (!match) throw new Error(`expected a name at ${this.at} in [${this.source}]`);
        this.at += match[0].length;
        return match[0];
    }

    private primary(): Expr {
        this.skipSpace();
        const char = this.source[this.at];
        if (char === "'") {
            let value = '';
            this.at++;
            for (;;) {
                const c = this.source[this.at];
                if (c === undefined) throw new Error(`unterminated string in [${this.source}]`);
                this.at++;
                if (c === "'") {
                    if (this.source[this.at] === "'") {
                        value += "'";
                        this.at++;
                        continue;
                    }
                    return { kind: 'string', value };
                }
                value += c;
            }
        }
        const number = /^-?\d+/.exec(this.source.slice(this.at));
        if (number) {
            this.at += number[0].length;
            return { kind: 'number', value: Number(number[0]) };
        }
        const name = this.identifier(true);
        this.expect('(');
        const args: Expr[] = [];
        this.skipSpace();
        if (this.source[this.at] === ')') {
            this.at++;
            return { kind: 'call', name, args };
        }
        for (;;) {
            args.push(this.expression());
            this.skipSpace();
            if (this.source[this.at] === ',') {
                this.at++;
                continue;
            }
            this.expect(')');
            return { kind: 'call', name, args };
        }
    }
}

/** True for a string that is an ARM expression (`[...]`, but not the `[[` escape of a literal bracket). */
export function isExpression(value: unknown): boolean {
    return typeof value === 'string' && value.startsWith('[') && value.endsWith(']') && !value.startsWith('[[');
}

function formatString(template: string, args: ArmValue[]): ArmValue {
    if (template === '{0}' && args.length === 1) return args[0]!;
    const text = template.replace(/\{(\d+)\}/g, (_m, i: string) => {
        const arg = args[Number(i)];
        return arg instanceof ArmUnknown ? `\${${arg.text}}` : describe(arg);
    });
    return args.some((a) => a instanceof ArmUnknown) ? new ArmUnknown(`'${text}'`) : text;
}

// ---- deployments ----

export interface ArmTemplateJson {
    parameters?: Record<string, { type?: string; defaultValue?: Json; allowedValues?: Json[] }>;
    variables?: JsonObject;
    resources?: JsonObject[] | Record<string, JsonObject>;
    outputs?: Record<string, { type?: string; value?: Json }>;
}

const DEPLOYMENTS = 'Microsoft.Resources/deployments';

/** One resource of a deployment (not a nested deployment): its JSON and the deployment it belongs to. */
export class ArmResource {
    constructor(
        readonly json: JsonObject,
        readonly deployment: ArmDeployment,
    ) {}

    get type(): string {
        return describe(this.evaluateRaw('type'));
    }

    get apiVersion(): string {
        return describe(this.evaluateRaw('apiVersion'));
    }

    private evaluateRaw(key: string): ArmValue {
        return this.deployment.evaluate(this.json[key] ?? '');
    }

    /** The value at a dotted path (`properties.siteConfig.minTlsVersion`), evaluated; undefined if absent. */
    get(path: string): ArmValue | undefined {
        const raw = jsonAt(this.json, path);
        return raw === undefined ? undefined : this.deployment.evaluate(raw);
    }

    /** Where it is, for messages: `replicaEvents: Microsoft.EventGrid/systemTopics <name>`. */
    get where(): string {
        return `${this.deployment.path}: ${this.type} ${describe(this.get('name'))}`;
    }
}

/** A JSON value as text: strings as they are, anything else as JSON. */
export function jsonText(value: Json | undefined): string {
    return typeof value === 'string' ? value : (JSON.stringify(value) ?? '');
}

/** Reads a dotted path through JSON objects (ARM property names are case-insensitive). */
export function jsonAt(value: Json | undefined, path: string): Json | undefined {
    let current: Json | undefined = value;
    for (const key of path.split('.')) {
        if (!current || typeof current !== 'object' || Array.isArray(current)) return undefined;
        const match = Object.keys(current).find((k) => k.toLowerCase() === key.toLowerCase());
        current = match === undefined ? undefined : current[match];
    }
    return current;
}

/** The root template or one nested deployment (a Bicep module) with the parameters its parent passes. */
export class ArmDeployment {
    private readonly cache = new Map<string, ArmValue>();

    constructor(
        readonly template: ArmTemplateJson,
        /** The `Microsoft.Resources/deployments` resource that deploys this template (none for the root). */
        readonly resource?: JsonObject,
        readonly parent?: ArmDeployment,
        /** For the root: values of parameters as a deployment would pass them (others take their defaults). */
        private readonly rootParameters: Readonly<Record<string, ArmValue>> = {},
    ) {}

    /** The deployment name as written (a module's `name:`), `main` for the root. */
    get name(): string {
        if (!this.resource || !this.parent) return 'main';
        return describe(this.parent.evaluate(this.resource.name ?? ''));
    }

    get path(): string {
        return this.parent && this.parent.parent ? `${this.parent.path}/${this.name}` : this.name;
    }

    private rawResources(): JsonObject[] {
        const resources = this.template.resources ?? [];
        return Array.isArray(resources) ? resources : Object.values(resources);
    }

    /** The resources this template deploys itself (nested deployments excluded). */
    get resources(): ArmResource[] {
        return this.rawResources()
            .filter((r) => r.type !== DEPLOYMENTS && r.existing !== true)
            .map((r) => new ArmResource(r, this));
    }

    resourcesOfType(type: string): ArmResource[] {
        return this.resources.filter((r) => r.type.toLowerCase() === type.toLowerCase());
    }

    /** Nested deployments (modules) of this template. */
    get modules(): ArmDeployment[] {
        return this.rawResources()
            .filter((r) => r.type === DEPLOYMENTS)
            .map((r) => new ArmDeployment((jsonAt(r, 'properties.template') ?? {}) as ArmTemplateJson, r, this));
    }

    /** The module deployed under `name` (for a module loop, the one whose name starts with `name-`). */
    module(name: string): ArmDeployment {
        const found =
            this.modules.find((m) => m.name === name) ??
            this.modules.find((m) => m.name.replace(/^'/, '').startsWith(`${name}-`));
        if (!found)
            throw new Error(`${this.path} has no module ${name} (has ${this.modules.map((m) => m.name).join(', ')})`);
        return found;
    }

    hasModule(name: string): boolean {
        return this.modules.some((m) => m.name === name);
    }

    /** Every resource here and in every nested deployment, depth first. */
    get allResources(): ArmResource[] {
        return [...this.resources, ...this.modules.flatMap((m) => m.allResources)];
    }

    get allDeployments(): ArmDeployment[] {
        return [this, ...this.modules.flatMap((m) => m.allDeployments)];
    }

    /** The raw expression the parent passes for a parameter (undefined: not passed). */
    passed(name: string): Json | undefined {
        const params = jsonAt(this.resource, 'properties.parameters');
        if (!params || typeof params !== 'object' || Array.isArray(params)) return undefined;
        const entry = params[name];
        return entry && typeof entry === 'object' && !Array.isArray(entry) ? entry.value : undefined;
    }

    /** A parameter's value: what the parent passes (evaluated there), else its default, else unknown. */
    param(name: string): ArmValue {
        const key = `param:${name}`;
        const hit = this.cache.get(key);
        if (hit !== undefined) return hit;
        const declared = this.template.parameters?.[name];
        if (!declared) throw new Error(`${this.path} has no parameter ${name}`);
        const passed = this.passed(name);
        let value: ArmValue;
        if (!this.parent && name in this.rootParameters) value = this.rootParameters[name]!;
        else if (passed !== undefined && this.parent) value = this.parent.evaluate(passed);
        else if (declared.defaultValue !== undefined) value = this.evaluate(declared.defaultValue);
        else value = new ArmUnknown(name);
        this.cache.set(key, value);
        return value;
    }

    variable(name: string): ArmValue {
        const key = `var:${name}`;
        const hit = this.cache.get(key);
        if (hit !== undefined) return hit;
        const raw = this.template.variables?.[name];
        if (raw === undefined) throw new Error(`${this.path} has no variable ${name}`);
        const value = this.evaluate(raw);
        this.cache.set(key, value);
        return value;
    }

    /** An output's value, evaluated in this deployment. */
    output(name: string): ArmValue | undefined {
        const raw = this.template.outputs?.[name]?.value;
        return raw === undefined ? undefined : this.evaluate(raw);
    }

    /** The evaluated arguments when `raw` is the expression `[fn(...)]`, else undefined. */
    callArgs(raw: Json | undefined, fn: string): ArmValue[] | undefined {
        if (typeof raw !== 'string' || !isExpression(raw)) return undefined;
        const expr = ExpressionParser.parse(raw.slice(1, -1));
        if (expr.kind !== 'call' || expr.name.toLowerCase() !== fn.toLowerCase()) return undefined;
        return expr.args.map((a) => this.evaluateExpr(a));
    }

    /** Evaluates a JSON value of this template: expressions inside strings, objects and arrays. */
    evaluate(value: Json): ArmValue {
        if (typeof value === 'string') {
            if (isExpression(value)) return this.evaluateExpr(ExpressionParser.parse(value.slice(1, -1)));
            return value.startsWith('[[') ? value.slice(1) : value;
        }
        if (Array.isArray(value)) return value.map((v) => this.evaluate(v));
        if (value && typeof value === 'object') {
            const out: { [key: string]: ArmValue } = {};
            // Keys can be expressions too (`'${identityId}': {}` compiles to `[format('{0}', ...)]`).
            for (const [k, v] of Object.entries(value))
                out[isExpression(k) ? describe(this.evaluate(k)) : k] = this.evaluate(v);
            return out;
        }
        return value;
    }

    private evaluateExpr(expr: Expr): ArmValue {
        switch (expr.kind) {
            case 'string':
            case 'number':
                return expr.value;
            case 'property':
                return this.access(this.evaluateExpr(expr.target), expr.name);
            case 'index': {
                const index = this.evaluateExpr(expr.index);
                return this.access(this.evaluateExpr(expr.target), index);
            }
            case 'call':
                return this.call(expr.name, expr.args);
        }
    }

    private access(target: ArmValue, key: ArmValue): ArmValue {
        if (target instanceof ArmModuleReference && key === 'outputs')
            return new ArmUnknown(`${target.moduleName}.outputs`);
        if (target instanceof ArmUnknown) {
            const text = target.text;
            if (/\.outputs\.\w+$/.test(text) && key === 'value') return target;
            return new ArmUnknown(typeof key === 'string' ? `${text}.${key}` : `${text}[${describe(key)}]`);
        }
        if (key instanceof ArmUnknown) return new ArmUnknown(`${describe(target)}[${key.text}]`);
        if (Array.isArray(target) && typeof key === 'number') return target[key] ?? null;
        if (isArmObject(target) && typeof key === 'string') {
            const match = Object.keys(target).find((k) => k.toLowerCase() === key.toLowerCase());
            if (match !== undefined) return target[match]!;
        }
        throw new Error(`${this.path}: cannot read ${describe(key)} of ${describe(target)}`);
    }

    private call(name: string, argExprs: Expr[]): ArmValue {
        const lower = name.toLowerCase();
        // Lazy: only the chosen branch of if() is evaluated, as in ARM.
        if (lower === 'if') {
            const condition = this.evaluateExpr(argExprs[0]!);
            if (condition instanceof ArmUnknown) {
                const [a, b] = [this.evaluateExpr(argExprs[1]!), this.evaluateExpr(argExprs[2]!)];
                return new ArmUnknown(`if(${condition.text}, ${describe(a)}, ${describe(b)})`);
            }
            return this.evaluateExpr(argExprs[condition ? 1 : 2]!);
        }
        const args = argExprs.map((a) => this.evaluateExpr(a));
        const unknown = args.some((a) => a instanceof ArmUnknown);
        const symbolic = () => new ArmUnknown(`${name}(${args.map(describeArg).join(', ')})`);
        switch (lower) {
            case 'parameters':
                return this.param(describe(args[0]));
            case 'variables':
                return this.variable(describe(args[0]));
            case 'format':
                return formatString(describe(args[0]), args.slice(1));
            case 'concat':
                if (args.every(Array.isArray)) return (args as ArmValue[][]).flat();
                return formatString(args.map((_a, i) => `{${i}}`).join(''), args);
            case 'createobject': {
                const out: { [key: string]: ArmValue } = {};
                for (let i = 0; i + 1 < args.length; i += 2) out[describe(args[i])] = args[i + 1]!;
                return out;
            }
            case 'createarray':
                return args;
            case 'json':
                return typeof args[0] === 'string' ? (JSON.parse(args[0]) as ArmValue) : symbolic();
            case 'true':
                return true;
            case 'false':
                return false;
            case 'null':
                return null;
            case 'resourceid':
            case 'subscriptionresourceid':
            case 'tenantresourceid': {
                const typeAt = args.findIndex((a) => typeof a === 'string' && /^[\w.]+\/[\w./]+$/.test(a));
                return typeAt < 0 ? symbolic() : new ArmResourceId(describe(args[typeAt]), args.slice(typeAt + 1));
            }
            case 'extensionresourceid':
                return typeof args[1] === 'string' ? new ArmResourceId(args[1], args.slice(2)) : symbolic();
            case 'reference':
                if (args[0] instanceof ArmResourceId && args[0].resourceType === DEPLOYMENTS)
                    return new ArmModuleReference(describe(args[0].names.at(-1)));
                return new ArmUnknown(`reference(${describeArg(args[0] ?? null)})`);
        }
        if (unknown) return symbolic();
        switch (lower) {
            case 'empty':
                return (
                    args[0] === null ||
                    args[0] === '' ||
                    (Array.isArray(args[0]) && args[0].length === 0) ||
                    (isArmObject(args[0]) && Object.keys(args[0]).length === 0)
                );
            case 'not':
                return !args[0];
            case 'and':
                return args.every(Boolean);
            case 'or':
                return args.some(Boolean);
            case 'equals':
                return JSON.stringify(args[0]) === JSON.stringify(args[1]);
            case 'greater':
                return Number(args[0]) > Number(args[1]);
            case 'less':
                return Number(args[0]) < Number(args[1]);
            case 'max':
                return Math.max(...args.map(Number));
            case 'min':
                return Math.min(...args.map(Number));
            case 'tolower':
                return describe(args[0]).toLowerCase();
            case 'toupper':
                return describe(args[0]).toUpperCase();
            case 'string':
                return typeof args[0] === 'string' ? args[0] : JSON.stringify(args[0]);
            case 'int':
                return Number(args[0]);
            case 'length':
                return Array.isArray(args[0]) ? args[0].length : describe(args[0]).length;
            case 'take':
                return Array.isArray(args[0])
                    ? args[0].slice(0, Number(args[1]))
                    : describe(args[0]).slice(0, Number(args[1]));
            case 'split':
                return describe(args[0]).split(describe(args[1]));
            case 'last':
                return Array.isArray(args[0]) ? (args[0].at(-1) ?? null) : describe(args[0]).slice(-1);
            case 'first':
                return Array.isArray(args[0]) ? (args[0][0] ?? null) : describe(args[0]).slice(0, 1);
            case 'contains':
                if (Array.isArray(args[0])) return args[0].some((v) => JSON.stringify(v) === JSON.stringify(args[1]));
                if (isArmObject(args[0])) return describe(args[1]) in args[0];
                return describe(args[0]).includes(describe(args[1]));
            case 'union':
                if (args.every(isArmObject)) return Object.assign({}, ...args) as { [key: string]: ArmValue };
                return symbolic();
            case 'coalesce':
                return args.find((a) => a !== null) ?? null;
        }
        // subscription(), resourceGroup(), tenant(), environment(), guid(), uniqueString(), copyIndex(), list*() ...
        return symbolic();
    }
}

function describeArg(value: ArmValue): string {
    return typeof value === 'string' ? `'${value}'` : describe(value);
}

/** Loads a compiled template as the root deployment. */
export function armDeployment(template: unknown, parameters: Record<string, ArmValue> = {}): ArmDeployment {
    if (!isArmObject(template)) throw new Error('not an ARM template');
    return new ArmDeployment(template, undefined, undefined, parameters);
}
