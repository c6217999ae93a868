import { LocalPlatformError } from '../src';
import { compareRoutePrecedence, parseRouteTemplate } from '../src/host/routeTemplate';

describe('route templates (the Functions HTTP trigger route syntax)', () => {
    it('matches literals case-insensitively and captures parameters', () => {
        const t = parseRouteTemplate('vms/{vmId}/disks/{diskId}');
        expect(t.match('VMs/vm-1/disks/d%201')).toEqual({ vmId: 'vm-1', diskId: 'd 1' });
        expect(t.match('vms/vm-1/disks')).toBeUndefined();
        expect(t.match('vms/vm-1/disks/d1/extra')).toBeUndefined();
        expect(t.match('vms/vm-1/volumes/d1')).toBeUndefined();
    });

    it('makes an optional parameter and a default optional', () => {
        const t = parseRouteTemplate('jobs/{id?}');
        expect(t.match('jobs')).toEqual({});
        expect(t.match('jobs/42')).toEqual({ id: '42' });
        const d = parseRouteTemplate('points/{kind=latest}');
        expect(d.match('points')).toEqual({ kind: 'latest' });
        expect(d.match('points/all')).toEqual({ kind: 'all' });
    });

    it('applies constraints', () => {
        const t = parseRouteTemplate('jobs/{n:int}');
        expect(t.match('jobs/17')).toEqual({ n: '17' });
        expect(t.match('jobs/-3')).toEqual({ n: '-3' });
        expect(t.match('jobs/abc')).toBeUndefined();
        expect(t.match('jobs/99999999999')).toBeUndefined();
        expect(parseRouteTemplate('a/{x:alpha:length(3)}').match('a/abc')).toEqual({ x: 'abc' });
        expect(parseRouteTemplate('a/{x:alpha:length(3)}').match('a/abcd')).toBeUndefined();
        expect(parseRouteTemplate('a/{x:range(1,10)}').match('a/11')).toBeUndefined();
        expect(parseRouteTemplate('a/{x:guid}').match('a/0f8fad5b-d9cb-469f-a165-70867728950e')).toBeDefined();
        expect(parseRouteTemplate('a/{x:guid}').match('a/not-a-guid')).toBeUndefined();
        expect(parseRouteTemplate('a/{x:bool}').match('a/True')).toEqual({ x: 'True' });
        expect(parseRouteTemplate('a/{x:regex(^v[0-9]+:[a-z]$)}').match('a/v12:b')).toEqual({ x: 'v12:b' });
        expect(parseRouteTemplate('a/{x:int?}').match('a')).toEqual({});
    });

    it('captures the rest of the path with a catch-all', () => {
        const t = parseRouteTemplate('files/{*path}');
        expect(t.match('files/a/b%20c/d.hrl')).toEqual({ path: 'a/b c/d.hrl' });
        expect(t.match('files')).toEqual({});
    });

    it('orders literals before constrained parameters before plain ones before catch-alls', () => {
        const templates = ['vms/{*rest}', 'vms/{id}', 'vms/{id:int}', 'vms/summary'].map(parseRouteTemplate);
        templates.sort(compareRoutePrecedence);
        expect(templates.map((t) => t.template)).toEqual(['vms/summary', 'vms/{id:int}', 'vms/{id}', 'vms/{*rest}']);
    });

    it.each([
        ['a/{}', /has no name/],
        ['a/{x}/{x}', /appears twice/],
        ['a/{x?}/b', /literal segment follows an optional/],
        ['a/{x?}/{y}', /required parameter "y" follows an optional/],
        ['a/{*x}/b', /catch-all/],
        ['a/{x:nope}', /unknown constraint "nope"/],
        ['a/{x:length(a)}', /length\(a\) needs/],
        ['a/{x:regex([)}', /not a valid pattern/],
        ['a//b', /empty segment/],
        ['a/x{y}', /mixes literal text/],
    ])('rejects %s', (template, message) => {
        let caught: unknown;
        try {
            parseRouteTemplate(template);
        } catch (err) {
            caught = err;
        }
        expect(caught).toBeInstanceOf(LocalPlatformError);
        expect((caught as LocalPlatformError).message).toMatch(message);
    });
});
