import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { adoptKeyFromFragment, ApiError, functionKey, prefetch, signedIn, signedInUser, signInUrl } from './api';
import { routeOf, useRoute } from './router';
import { ITEMS_PATH, ItemsView } from './views/items';
import { JobsView, JobView } from './views/jobs';
import { PlansView } from './views/plans';
import { NetworksView, PoliciesView, SitesView } from './views/sites';
import { VmView } from './views/vm';

const NAV = [
    { route: 'items', label: 'Replicated items' },
    { route: 'jobs', label: 'Jobs' },
    { route: 'sites', label: 'Sites' },
    { route: 'policies', label: 'Policies' },
    { route: 'networks', label: 'Network mappings' },
    { route: 'plans', label: 'Recovery plans' },
];

type Session = { state: 'checking' } | { state: 'in'; who: string } | { state: 'out'; reason: string };

/** Signed in with the function key (local) or App Service authentication (Azure); otherwise how to sign in. */
function useSession(): Session {
    const [session, setSession] = useState<Session>({ state: 'checking' });
    useEffect(() => {
        void (async () => {
            try {
                await signedIn;
                const user = functionKey() ? null : await signedInUser();
                setSession({ state: 'in', who: user ? user.name : functionKey() ? 'function key' : 'signed in' });
            } catch (err) {
                const e = err as ApiError;
                setSession({
                    state: 'out',
                    reason: e.status === 401 || e.status === 403 ? e.message : `${e.code}: ${e.message}`,
                });
            }
        })();
    }, []);
    return session;
}

function View({ route }: { route: string[] }) {
    const [name, id] = route;
    switch (name) {
        case 'vm':
            return <VmView vmId={id ?? ''} />;
        case 'jobs':
            return id ? <JobView jobId={id} /> : <JobsView />;
        case 'sites':
            return <SitesView />;
        case 'policies':
            return <PoliciesView />;
        case 'networks':
            return <NetworksView />;
        case 'plans':
            return <PlansView />;
        default:
            return <ItemsView />;
    }
}

function App() {
    const route = useRoute();
    const session = useSession();
    const current = route[0] === 'vm' ? 'items' : route[0];
    const shown = useRef<string | undefined>(undefined);
    useEffect(() => {
        // Another view (not the first): move focus to its heading so keyboard and screen reader users land on it.
        const key = route.join('/');
        if (shown.current !== undefined && shown.current !== key) {
            const h1 = document.querySelector<HTMLElement>('main h1');
            h1?.setAttribute('tabindex', '-1');
            h1?.focus({ preventScroll: true });
        }
        shown.current = key;
    }, [route.join('/')]);
    return (
        <>
            <a
                class="skip"
                href="#main"
                onClick={(e) => {
                    e.preventDefault();
                    document.getElementById('main')?.focus();
                }}
            >
                Skip to content
            </a>
            <header class="top">
                <span class="brand">Hyper-V Replica to Azure</span>
                <nav aria-label="Views">
                    <ul>
                        {NAV.map((n) => (
                            <li key={n.route}>
                                <a href={`#/${n.route}`} aria-current={current === n.route ? 'page' : undefined}>
                                    {n.label}
                                </a>
                            </li>
                        ))}
                    </ul>
                </nav>
                <span class="who" data-testid="who">
                    {session.state === 'in' ? session.who : ''}
                </span>
            </header>
            <main id="main" tabIndex={-1}>
                {session.state === 'out' ? (
                    <section class="signin">
                        <h1>Sign in</h1>
                        <p>{session.reason}</p>
                        <p>
                            In Azure, <a href={signInUrl()}>sign in with Microsoft Entra ID</a>. Locally, open the
                            console URL that <code>npm start</code> prints (it carries the function key).
                        </p>
                    </section>
                ) : (
                    // The view loads while the sign-in is checked: no extra round trip before the first data.
                    <View route={route} />
                )}
            </main>
        </>
    );
}

adoptKeyFromFragment();
// The first view's data is asked for before anything renders (the items view takes this answer).
if (routeOf(location.hash)[0] === 'items') prefetch(ITEMS_PATH);
render(<App />, document.getElementById('app')!);
