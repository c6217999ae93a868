import { firstPollDelayMs } from '../../../tools/simulator/simulation';

describe("the simulator's first poll for a cycle's recovery point", () => {
    it("polls at once for a VM's first cycle, when nothing is known of its apply time", () => {
        expect(firstPollDelayMs(undefined, 0)).toBe(0);
    });

    it("comes at 80 % of the VM's last cycle time, counted from when the cycle was shipped", () => {
        expect(firstPollDelayMs(100_000, 0)).toBe(80_000);
        expect(firstPollDelayMs(100_000, 30_000)).toBe(50_000);
        expect(firstPollDelayMs(5_400, 0)).toBe(4_320);
    });

    it('never waits when the cycle was shipped longer ago than that', () => {
        expect(firstPollDelayMs(10_000, 9_000)).toBe(0);
    });
});
