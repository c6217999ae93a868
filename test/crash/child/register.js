// Lets a plain `node` child process load the TypeScript sources, as jest does for the tests themselves:
// each .ts file is transpiled on require (no type check; the build and the tests check types). Transpiled
// files are kept in the temp folder by content digest, so the second child of a run starts fast.
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const ts = require('typescript');

const cacheDir = path.join(os.tmpdir(), 'hvr-crash-ts-cache');
fs.mkdirSync(cacheDir, { recursive: true });

require.extensions['.ts'] = function (module, filename) {
    const source = fs.readFileSync(filename, 'utf8');
    const key = crypto.createHash('sha256').update(filename).update('\0').update(source).digest('hex');
    const cached = path.join(cacheDir, `${key}.js`);
    let output;
    try {
        output = fs.readFileSync(cached, 'utf8');
    } catch {
        output = ts.transpileModule(source, {
            compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
            fileName: filename,
        }).outputText;
        const temporary = `${cached}.${process.pid}`;
        fs.writeFileSync(temporary, output);
        fs.renameSync(temporary, cached);
    }
    module._compile(output, filename);
};
