/** kvasm's version, as package.json states it (tests/cli.test.ts keeps the two equal). */
export const VERSION = "0.1.0";
