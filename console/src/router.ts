import { useEffect, useState } from 'preact/hooks';

/** Views are addressed by the URL's fragment (#/items, #/vm/<id>, #/jobs/<id>…): the server sees one page. */
export function useRoute(): string[] {
    const [hash, setHash] = useState(location.hash);
    useEffect(() => {
        const on = () => setHash(location.hash);
        addEventListener('hashchange', on);
        return () => removeEventListener('hashchange', on);
    }, []);
    const path = hash.replace(/^#\/?/, '');
    return path === '' ? ['items'] : path.split('/').map((p) => decodeURIComponent(p));
}

export function navigate(hash: string): void {
    location.hash = hash;
}
