import { useEffect, useState } from 'preact/hooks';

/** Views are addressed by the URL's fragment (#/items, #/vm/<id>, #/jobs/<id>…): the server sees one page. */
export function useRoute(): string[] {
    const [hash, setHash] = useState(location.hash);
    useEffect(() => {
        const on = () => setHash(location.hash);
        addEventListener('hashchange', on);
        return () => removeEventListener('hashchange', on);
    }, []);
    return routeOf(hash);
}

/** The view a fragment addresses (the items when none). */
export function routeOf(hash: string): string[] {
    const path = hash.replace(/^#\/?/, '');
    return path === '' ? ['items'] : path.split('/').map((p) => decodeURIComponent(p));
}

export function navigate(hash: string): void {
    location.hash = hash;
}
