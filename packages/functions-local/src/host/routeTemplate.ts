import { LocalPlatformError } from '../errors';

/** A route constraint as the Functions (ASP.NET Core) route template syntax writes it after `:`. */
type Constraint = (value: string) => boolean;

interface LiteralSegment {
    kind: 'literal';
    text: string;
}

interface ParameterSegment {
    kind: 'parameter';
    name: string;
    optional: boolean;
    catchAll: boolean;
    defaultValue?: string;
    constraints: Constraint[];
}

type Segment = LiteralSegment | ParameterSegment;

/** A compiled route template: `vms/{vmId}/disks/{diskId?}`, `jobs/{n:int}`, `files/{*path}`. */
export interface RouteTemplate {
    readonly template: string;
    /** Lower sorts first when two templates match the same path (literals beat parameters beat catch-alls). */
    readonly precedence: number[];
    /** The route values for `path` (no leading slash, no query), or undefined when it does not match. */
    match(path: string): Record<string, string> | undefined;
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function invalid(template: string, message: string): LocalPlatformError {
    return new LocalPlatformError('VALIDATION_FAILED', `Invalid route template "${template}": ${message}`, {
        template,
    });
}

function numberArgs(template: string, name: string, args: string | undefined, count: number[]): number[] {
    const values = (args ?? '').split(',').map((a) => a.trim());
    if (!count.includes(values.length) || values.some((v) => !/^-?\d+$/.test(v))) {
        throw invalid(
            template,
            `constraint ${name}(${args ?? ''}) needs ${count.join(' or ')} whole-number argument(s)`,
        );
    }
    return values.map(Number);
}

function isInteger(v: string, bits: 32 | 64): boolean {
    if (!/^-?\d+$/.test(v)) return false;
    const n = BigInt(v);
    const limit = bits === 32 ? 2n ** 31n : 2n ** 63n;
    return n >= -limit && n < limit;
}

function compileConstraint(template: string, text: string): Constraint {
    const m = /^([a-zA-Z]+)(?:\((.*)\))?$/s.exec(text);
    if (!m) throw invalid(template, `constraint "${text}" is not name or name(arguments)`);
    const name = m[1]!.toLowerCase();
    const args = m[2];
    switch (name) {
        case 'int':
            return (v) => isInteger(v, 32);
        case 'long':
            return (v) => isInteger(v, 64);
        case 'bool':
            return (v) => /^(true|false)$/i.test(v);
        case 'guid':
            return (v) => GUID.test(v) || GUID.test(v.replace(/^\{(.*)\}$/, '$1'));
        case 'alpha':
            return (v) => /^[a-z]+$/i.test(v);
        case 'double':
        case 'float':
        case 'decimal':
            return (v) => v.trim() !== '' && Number.isFinite(Number(v));
        case 'datetime':
            return (v) => !Number.isNaN(Date.parse(v));
        case 'required':
            return (v) => v !== '';
        case 'minlength': {
            const [n] = numberArgs(template, name, args, [1]);
            return (v) => v.length >= n!;
        }
        case 'maxlength': {
            const [n] = numberArgs(template, name, args, [1]);
            return (v) => v.length <= n!;
        }
        case 'length': {
            const [a, b] = numberArgs(template, name, args, [1, 2]);
            return b === undefined ? (v) => v.length === a : (v) => v.length >= a! && v.length <= b;
        }
        case 'min': {
            const [n] = numberArgs(template, name, args, [1]);
            return (v) => isInteger(v, 64) && Number(v) >= n!;
        }
        case 'max': {
            const [n] = numberArgs(template, name, args, [1]);
            return (v) => isInteger(v, 64) && Number(v) <= n!;
        }
        case 'range': {
            const [a, b] = numberArgs(template, name, args, [2]);
            return (v) => isInteger(v, 64) && Number(v) >= a! && Number(v) <= b!;
        }
        case 'regex': {
            if (!args) throw invalid(template, 'constraint regex() needs a pattern');
            let re: RegExp;
            try {
                re = new RegExp(args, 'i');
            } catch (err) {
                throw invalid(template, `constraint regex(${args}) is not a valid pattern: ${(err as Error).message}`);
            }
            return (v) => re.test(v);
        }
        default:
            throw invalid(template, `unknown constraint "${name}"`);
    }
}

function parseParameter(template: string, body: string, isLastSegment: boolean): ParameterSegment {
    // {name}, {name?}, {name=default}, {*rest}, {name:int}, {name:int:min(1)}, {name:regex(^a:b$)}
    let text = body;
    let catchAll = false;
    if (text.startsWith('**')) {
        catchAll = true;
        text = text.slice(2);
    } else if (text.startsWith('*')) {
        catchAll = true;
        text = text.slice(1);
    }
    const nameMatch = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text);
    if (!nameMatch) throw invalid(template, `parameter "{${body}}" has no name`);
    const name = nameMatch[0];
    let rest = text.slice(name.length);
    let optional = false;
    let defaultValue: string | undefined;
    const constraints: Constraint[] = [];
    // Constraints come before the optional marker or the default; regex arguments may hold ':' and ')'.
    while (rest.startsWith(':')) {
        rest = rest.slice(1);
        let depth = 0;
        let i = 0;
        for (; i < rest.length; i++) {
            const c = rest[i];
            if (c === '(') depth++;
            else if (c === ')') depth--;
            else if (depth === 0 && (c === ':' || c === '?' || c === '=')) break;
        }
        constraints.push(compileConstraint(template, rest.slice(0, i)));
        rest = rest.slice(i);
    }
    if (rest === '?') {
        optional = true;
    } else if (rest.startsWith('=')) {
        defaultValue = rest.slice(1);
        optional = true;
    } else if (rest !== '') {
        throw invalid(template, `unexpected "${rest}" in parameter "{${body}}"`);
    }
    if (catchAll && !isLastSegment) throw invalid(template, `catch-all parameter {*${name}} must be the last segment`);
    return { kind: 'parameter', name, optional: optional || catchAll, catchAll, defaultValue, constraints };
}

/**
 * Compiles a route template as Functions' HTTP trigger `route` option writes it. Supported: literal
 * segments (case-insensitive), one parameter per segment, optional parameters and defaults at the end,
 * catch-all `{*name}`, and the built-in constraints (int, long, bool, guid, alpha, double, float,
 * decimal, datetime, min, max, range, length, minlength, maxlength, regex, required).
 */
export function parseRouteTemplate(template: string): RouteTemplate {
    const trimmed = template.replace(/^\/+|\/+$/g, '');
    const rawSegments = trimmed === '' ? [] : trimmed.split('/');
    const segments: Segment[] = rawSegments.map((raw, i) => {
        if (raw === '') throw invalid(template, 'empty segment ("//")');
        const isLast = i === rawSegments.length - 1;
        if (raw.startsWith('{') && raw.endsWith('}')) return parseParameter(template, raw.slice(1, -1), isLast);
        if (raw.includes('{') || raw.includes('}')) {
            throw invalid(template, `segment "${raw}" mixes literal text and a parameter (not supported here)`);
        }
        return { kind: 'literal', text: raw.toLowerCase() };
    });
    const names = new Set<string>();
    let sawOptional = false;
    for (const s of segments) {
        if (s.kind !== 'parameter') {
            if (sawOptional) throw invalid(template, 'a literal segment follows an optional parameter');
            continue;
        }
        const key = s.name.toLowerCase();
        if (names.has(key)) throw invalid(template, `parameter "${s.name}" appears twice`);
        names.add(key);
        if (sawOptional && !s.optional)
            throw invalid(template, `required parameter "${s.name}" follows an optional one`);
        sawOptional ||= s.optional;
    }
    const precedence = segments.map((s) => {
        if (s.kind === 'literal') return 1;
        if (s.catchAll) return 5;
        return s.constraints.length > 0 ? 2 : s.optional ? 4 : 3;
    });

    const match = (path: string): Record<string, string> | undefined => {
        const trimmedPath = path.replace(/^\/+|\/+$/g, '');
        const parts = trimmedPath === '' ? [] : trimmedPath.split('/');
        const values: Record<string, string> = {};
        for (let i = 0; i < segments.length; i++) {
            const segment = segments[i]!;
            if (segment.kind === 'literal') {
                if (parts[i] === undefined || safeDecode(parts[i]!)?.toLowerCase() !== segment.text) return undefined;
                continue;
            }
            let raw: string | undefined;
            if (segment.catchAll) {
                raw = parts.length > i ? parts.slice(i).join('/') : undefined;
            } else {
                raw = parts[i];
            }
            if (raw === undefined || raw === '') {
                if (!segment.optional) return undefined;
                if (segment.defaultValue !== undefined) values[segment.name] = segment.defaultValue;
                continue;
            }
            const value = segment.catchAll ? raw.split('/').map(safeDecode).join('/') : safeDecode(raw);
            if (value === undefined || value.includes('\u0000')) return undefined;
            if (!segment.constraints.every((c) => c(value))) return undefined;
            values[segment.name] = value;
        }
        const consumed = segments.some((s) => s.kind === 'parameter' && s.catchAll) ? parts.length : segments.length;
        if (parts.length > consumed) return undefined;
        return values;
    };
    return { template, precedence, match };
}

function safeDecode(value: string): string | undefined {
    try {
        return decodeURIComponent(value);
    } catch {
        return undefined;
    }
}

/** Orders two templates so that the more specific is tried first. */
export function compareRoutePrecedence(a: RouteTemplate, b: RouteTemplate): number {
    const n = Math.max(a.precedence.length, b.precedence.length);
    for (let i = 0; i < n; i++) {
        const x = a.precedence[i] ?? 0;
        const y = b.precedence[i] ?? 0;
        if (x !== y) return x - y;
    }
    return 0;
}
