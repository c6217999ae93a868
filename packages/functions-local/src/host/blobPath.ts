import { LocalPlatformError } from '../errors';

/** A blob trigger's `path` (`container/{name}`, `logs/{site}/{name}.hrl`) compiled for matching blob names. */
export interface BlobPathPattern {
    container: string;
    /** The literal start of blob names, used as the listing prefix. */
    prefix: string;
    /** Binding data (`name`, ...) for a blob name, or undefined when the name does not match. */
    match(blobName: string): Record<string, string> | undefined;
}

export function parseBlobPath(path: string): BlobPathPattern {
    const slash = path.indexOf('/');
    const container = slash < 0 ? path : path.slice(0, slash);
    const rest = slash < 0 ? '' : path.slice(slash + 1);
    if (!/^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$/.test(container)) {
        throw new LocalPlatformError(
            'VALIDATION_FAILED',
            `Blob trigger path "${path}" does not start with a valid container name.`,
            {
                path,
            },
        );
    }
    const names: string[] = [];
    let source = '^';
    let prefix = '';
    let literal = true;
    for (const part of rest.split(/(\{[^}]*\})/)) {
        if (part === '') continue;
        const param = /^\{([A-Za-z_][A-Za-z0-9_]*)\}$/.exec(part);
        if (param) {
            names.push(param[1]!);
            // Like the Functions host, a parameter may span virtual folders: `{name}` matches `a/b/c.hrl`.
            source += '(.+?)';
            literal = false;
        } else if (part.includes('{') || part.includes('}')) {
            throw new LocalPlatformError(
                'VALIDATION_FAILED',
                `Blob trigger path "${path}" has a malformed parameter "${part}".`,
                {
                    path,
                },
            );
        } else {
            source += part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
            if (literal) prefix += part;
        }
    }
    if (names.length === 0 && rest === '') source += '.+';
    const regex = new RegExp(source + '$', 's');
    return {
        container,
        prefix,
        match(blobName) {
            const m = regex.exec(blobName);
            if (!m) return undefined;
            const values: Record<string, string> = {};
            names.forEach((n, i) => (values[n] = m[i + 1]!));
            return values;
        },
    };
}
