import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import type Parser from 'tree-sitter';

/**
 * A small query layer over Bicep files, parsed offline with tree-sitter-bicep (the Bicep compiler is a download
 * and cannot run here). It gives declarations (params, vars, resources, modules, outputs) and their values as a
 * simple object model: literals become JS values, objects and arrays become records and arrays, and anything
 * computed (references, calls, interpolated strings, loops, conditions) stays a {@link BicepExpr} carrying its
 * source text. It checks syntax, not types: a wrong property name or API version is not caught here.
 *
 * Known grammar gap (tree-sitter-bicep 1.1.0): a string literal that *starts* with `//` (e.g. `'//'`) is read as
 * a comment and reported as a MISSING quote, although Bicep accepts it. Write such values another way.
 */

type SyntaxNode = Parser.SyntaxNode;

/** A value the model does not reduce to a literal: its source text, and the syntax node for deeper queries. */
export class BicepExpr {
    constructor(
        readonly text: string,
        readonly node: SyntaxNode,
    ) {}

    /** `name(args)` when this is a plain function call (`guid(a, b)`, `subscriptionResourceId(...)`). */
    get call(): { name: string; args: BicepValue[] } | undefined {
        if (this.node.type !== 'call_expression') return undefined;
        const fn = this.node.childForFieldName('function');
        const args = this.node.childForFieldName('arguments');
        if (!fn || !args) return undefined;
        return { name: fn.text, args: namedChildren(args).map(toValue) };
    }

    toString(): string {
        return this.text;
    }
}

export type BicepValue = string | number | boolean | null | BicepValue[] | BicepObject | BicepExpr;
export interface BicepObject {
    [key: string]: BicepValue;
}

export interface BicepDecorator {
    name: string;
    args: BicepValue[];
}

export interface BicepParam {
    name: string;
    type: string;
    defaultValue?: BicepValue;
    decorators: BicepDecorator[];
}

/** `[for item in over: ...]` or `[for (item, index) in over: ...]`. */
export interface BicepLoop {
    item: string;
    index?: string;
    over: BicepValue;
}

interface Declared {
    /** Symbolic name. */
    symbol: string;
    /** `if (condition)` on the declaration, as source text. */
    condition?: BicepExpr;
    loop?: BicepLoop;
    /** The declaration's object: `name`, `scope`, `properties` / `params`, ... */
    body: BicepObject;
    decorators: BicepDecorator[];
    line: number;
}

export interface BicepResource extends Declared {
    /** e.g. `Microsoft.Storage/storageAccounts`. */
    type: string;
    apiVersion: string;
    existing: boolean;
}

export interface BicepModule extends Declared {
    /** The path as written (`modules/x.bicep`, or a registry reference). */
    path: string;
    /** Absolute path of a local module file; undefined for registry (`br:`) and template-spec (`ts:`) references. */
    file?: string;
    params: BicepObject;
}

export interface BicepOutput {
    name: string;
    type: string;
    value: BicepValue;
}

export interface BicepSyntaxError {
    kind: 'ERROR' | 'MISSING';
    line: number;
    column: number;
    text: string;
}

interface TreeSitterModules {
    Parser: typeof Parser;
    bicep: Parser.Language;
}

/**
 * tree-sitter's JS wrapper patches its native classes' prototypes when it is first evaluated. Jest evaluates
 * modules once per test file, but native addons once per process, so a second test file's copy of the wrapper
 * captures the first copy's patches instead of the native methods and every parse returns `rootNode ===
 * undefined`. The wrapper is therefore loaded once per process and kept on the (process-wide) native binding.
 */
function treeSitter(): TreeSitterModules {
    const load = createRequire(__filename);
    const wrapperDir = dirname(load.resolve('tree-sitter'));
    const nodeGypBuild = load(load.resolve('node-gyp-build', { paths: [wrapperDir] })) as (dir: string) => {
        hvrTreeSitter?: TreeSitterModules;
    };
    const binding = nodeGypBuild(wrapperDir);
    binding.hvrTreeSitter ??= {
        Parser: load('tree-sitter') as typeof Parser,
        bicep: load('tree-sitter-bicep') as Parser.Language,
    };
    return binding.hvrTreeSitter;
}

let parser: Parser | undefined;
function bicepParser(): Parser {
    if (!parser) {
        const { Parser: TreeSitterParser, bicep } = treeSitter();
        parser = new TreeSitterParser();
        parser.setLanguage(bicep);
    }
    return parser;
}

function namedChildren(node: SyntaxNode): SyntaxNode[] {
    return node.namedChildren.filter((c) => c.type !== 'comment');
}

function decodeString(node: SyntaxNode): string | BicepExpr {
    if (node.text.startsWith("'''")) {
        // Multi-line strings have no escapes or interpolation; Bicep drops the line break right after the quotes.
        return node.text.slice(3, -3).replace(/^\r?\n/, '');
    }
    let out = '';
    for (const part of node.namedChildren) {
        if (part.type === 'interpolation') return new BicepExpr(node.text, node);
        if (part.type === 'string_content') out += part.text;
        else if (part.type === 'escape_sequence') out += decodeEscape(part.text);
    }
    return out;
}

function decodeEscape(escape: string): string {
    switch (escape) {
        case '\\n':
            return '\n';
        case '\\r':
            return '\r';
        case '\\t':
            return '\t';
        case "\\'":
            return "'";
        case '\\\\':
            return '\\';
        case '\\$':
            return '$';
        default: {
            const unicode = /^\\u\{([0-9a-fA-F]+)\}$/.exec(escape);
            return unicode ? String.fromCodePoint(parseInt(unicode[1]!, 16)) : escape;
        }
    }
}

function propertyKey(node: SyntaxNode): string {
    if (node.type === 'string') {
        const key = decodeString(node);
        return typeof key === 'string' ? key : key.text;
    }
    return node.text;
}

/** Converts an expression node to the model: literals to JS values, everything else to a BicepExpr. */
export function toValue(node: SyntaxNode): BicepValue {
    switch (node.type) {
        case 'object': {
            const obj: BicepObject = {};
            for (const prop of namedChildren(node)) {
                if (prop.type !== 'object_property') continue;
                const [key, value] = namedChildren(prop);
                if (key && value) obj[propertyKey(key)] = toValue(value);
            }
            return obj;
        }
        case 'array':
            return namedChildren(node).map(toValue);
        case 'string':
            return decodeString(node);
        case 'number':
            return Number(node.text);
        case 'boolean':
            return node.text === 'true';
        case 'null':
            return null;
        case 'parenthesized_expression': {
            const [inner] = namedChildren(node);
            return inner ? toValue(inner) : new BicepExpr(node.text, node);
        }
        default:
            return new BicepExpr(node.text, node);
    }
}

function decoratorsBefore(node: SyntaxNode): BicepDecorator[] {
    let prev = node.previousNamedSibling;
    while (prev?.type === 'comment') prev = prev.previousNamedSibling;
    if (prev?.type !== 'decorators') return [];
    return namedChildren(prev).flatMap((decorator) => {
        const [expr] = namedChildren(decorator);
        if (!expr) return [];
        const value = toValue(expr);
        if (value instanceof BicepExpr && value.call) return [{ name: value.call.name, args: value.call.args }];
        return [{ name: expr.text, args: [] }];
    });
}

/** Reads the part after `=`: an object, `if (c) {...}`, or `[for x in xs: ...]` (possibly with an `if` inside). */
function declarationBody(node: SyntaxNode): { body: BicepObject; condition?: BicepExpr; loop?: BicepLoop } {
    const last = namedChildren(node).at(-1);
    if (!last) return { body: {} };
    if (last.type === 'object') return { body: toValue(last) as BicepObject };
    if (last.type === 'if_statement') {
        const [cond, obj] = namedChildren(last);
        return {
            body: obj?.type === 'object' ? (toValue(obj) as BicepObject) : {},
            condition: cond ? new BicepExpr(cond.text, cond) : undefined,
        };
    }
    if (last.type === 'for_statement') {
        const parts = namedChildren(last);
        const head = parts[0];
        const over = parts[1];
        const inner = last.childForFieldName('body') ?? parts.at(-1);
        let loop: BicepLoop | undefined;
        if (head && over) {
            if (head.type === 'for_loop_parameters') {
                const item = head.namedChildren.find((c) => c.type === 'loop_variable')?.text ?? '';
                const index = head.namedChildren.find((c) => c.type === 'loop_enumerator')?.text;
                loop = { item, index, over: toValue(over) };
            } else {
                loop = { item: head.text, over: toValue(over) };
            }
        }
        if (inner?.type === 'if_statement') {
            const [cond, obj] = namedChildren(inner);
            return {
                body: obj?.type === 'object' ? (toValue(obj) as BicepObject) : {},
                condition: cond ? new BicepExpr(cond.text, cond) : undefined,
                loop,
            };
        }
        return { body: inner?.type === 'object' ? (toValue(inner) as BicepObject) : {}, loop };
    }
    return { body: {} };
}

function stringLiteral(node: SyntaxNode | undefined | null): string {
    if (!node) return '';
    const value = toValue(node);
    return typeof value === 'string' ? value : node.text;
}

/** One parsed Bicep file. */
export class BicepFile {
    readonly errors: BicepSyntaxError[] = [];
    readonly targetScope: string = 'resourceGroup';
    readonly params = new Map<string, BicepParam>();
    readonly vars = new Map<string, BicepValue>();
    readonly resources: BicepResource[] = [];
    readonly modules: BicepModule[] = [];
    readonly outputs = new Map<string, BicepOutput>();
    readonly root: SyntaxNode;

    private constructor(
        readonly path: string,
        readonly source: string,
    ) {
        this.root = bicepParser().parse(source).rootNode;
        this.collectErrors(this.root);
        for (const node of namedChildren(this.root)) {
            const kids = namedChildren(node);
            switch (node.type) {
                case 'target_scope_assignment':
                    (this as { targetScope: string }).targetScope = stringLiteral(kids[0]);
                    break;
                case 'parameter_declaration': {
                    const [name, type, value] = kids;
                    if (!name) break;
                    this.params.set(name.text, {
                        name: name.text,
                        type: type?.text ?? '',
                        defaultValue: value ? toValue(value) : undefined,
                        decorators: decoratorsBefore(node),
                    });
                    break;
                }
                case 'variable_declaration': {
                    const [name, value] = kids;
                    if (name && value) this.vars.set(name.text, toValue(value));
                    break;
                }
                case 'resource_declaration': {
                    const [symbol, typeNode] = kids;
                    const [type = '', apiVersion = ''] = stringLiteral(typeNode).split('@');
                    this.resources.push({
                        symbol: symbol?.text ?? '',
                        type,
                        apiVersion,
                        existing: node.children.some((c) => c.type === 'existing'),
                        decorators: decoratorsBefore(node),
                        line: node.startPosition.row + 1,
                        ...declarationBody(node),
                    });
                    break;
                }
                case 'module_declaration': {
                    const [symbol, pathNode] = kids;
                    const modulePath = stringLiteral(pathNode);
                    const local = !/^(br|ts)[:/]/.test(modulePath);
                    const decl = declarationBody(node);
                    const params = decl.body.params;
                    this.modules.push({
                        symbol: symbol?.text ?? '',
                        path: modulePath,
                        file: local ? resolve(dirname(path), modulePath) : undefined,
                        params:
                            params &&
                            typeof params === 'object' &&
                            !Array.isArray(params) &&
                            !(params instanceof BicepExpr)
                                ? params
                                : {},
                        decorators: decoratorsBefore(node),
                        line: node.startPosition.row + 1,
                        ...decl,
                    });
                    break;
                }
                case 'output_declaration': {
                    const [name, type, value] = kids;
                    if (name && value) {
                        this.outputs.set(name.text, { name: name.text, type: type?.text ?? '', value: toValue(value) });
                    }
                    break;
                }
            }
        }
    }

    /** Parses Bicep source; `path` locates relative module references. */
    static parse(source: string, path = 'inline.bicep'): BicepFile {
        return new BicepFile(path, source);
    }

    static load(path: string): BicepFile {
        return new BicepFile(resolve(path), readFileSync(path, 'utf8'));
    }

    private collectErrors(node: SyntaxNode): void {
        if (node.type === 'ERROR' || node.isMissing) {
            this.errors.push({
                kind: node.isMissing ? 'MISSING' : 'ERROR',
                line: node.startPosition.row + 1,
                column: node.startPosition.column + 1,
                text: node.isMissing ? node.type : node.text.slice(0, 80),
            });
        }
        if (!node.hasError && !node.isMissing) return;
        for (const child of node.children) this.collectErrors(child);
    }

    /** Resources of one type (`Microsoft.Authorization/roleAssignments`), declared or `existing`. */
    resourcesOfType(type: string): BicepResource[] {
        return this.resources.filter((r) => r.type.toLowerCase() === type.toLowerCase());
    }

    resource(symbol: string): BicepResource | undefined {
        return this.resources.find((r) => r.symbol === symbol);
    }

    module(symbol: string): BicepModule | undefined {
        return this.modules.find((m) => m.symbol === symbol);
    }

    /**
     * Folds what can be folded without deploying: a bare identifier naming a var becomes the var's value (a
     * param, its default), and `a.b` / `a['b']` reads a property of an object so found. Anything else comes back
     * unchanged.
     */
    evaluate(value: BicepValue | undefined, depth = 0): BicepValue | undefined {
        if (!(value instanceof BicepExpr) || depth > 20) return value;
        const node = value.node;
        if (node.type === 'identifier') {
            if (this.vars.has(node.text)) return this.evaluate(this.vars.get(node.text), depth + 1);
            const param = this.params.get(node.text);
            if (param?.defaultValue !== undefined) return this.evaluate(param.defaultValue, depth + 1);
            return value;
        }
        if (node.type === 'member_expression' || node.type === 'subscript_expression') {
            const objectNode = node.childForFieldName('object');
            const keyNode = node.childForFieldName(node.type === 'member_expression' ? 'property' : 'index');
            if (!objectNode || !keyNode) return value;
            const target = this.evaluate(toValue(objectNode), depth + 1);
            const key = node.type === 'member_expression' ? keyNode.text : stringLiteral(keyNode);
            if (target && typeof target === 'object' && !Array.isArray(target) && !(target instanceof BicepExpr)) {
                return key in target ? this.evaluate(target[key], depth + 1) : value;
            }
        }
        return value;
    }
}

/** Reads a dotted path (`properties.siteConfig.minTlsVersion`) through records; undefined where it stops. */
export function valueAt(value: BicepValue | undefined, path: string): BicepValue | undefined {
    let current: BicepValue | undefined = value;
    for (const key of path.split('.')) {
        if (!current || typeof current !== 'object' || Array.isArray(current) || current instanceof BicepExpr) {
            return undefined;
        }
        // ARM property names are case-insensitive (Application Insights spells it DisableLocalAuth).
        const match = Object.keys(current).find((k) => k.toLowerCase() === key.toLowerCase());
        current = match === undefined ? undefined : current[match];
    }
    return current;
}

/** The source text of a value as it would be written in Bicep (literals re-quoted), for text assertions. */
export function sourceText(value: BicepValue | undefined): string {
    if (value === undefined) return '';
    if (value instanceof BicepExpr) return value.text;
    if (typeof value === 'string') return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
    if (value === null || typeof value !== 'object') return String(value);
    if (Array.isArray(value)) return `[${value.map(sourceText).join(', ')}]`;
    return `{ ${Object.entries(value)
        .map(([k, v]) => `${k}: ${sourceText(v)}`)
        .join(', ')} }`;
}

/** Every `.bicep` file under a folder, sorted. */
export function bicepFilesUnder(dir: string): string[] {
    if (!existsSync(dir)) return [];
    return readdirSync(dir, { withFileTypes: true })
        .flatMap((entry) => {
            const full = join(dir, entry.name);
            if (entry.isDirectory()) return bicepFilesUnder(full);
            return entry.name.endsWith('.bicep') ? [full] : [];
        })
        .sort();
}
