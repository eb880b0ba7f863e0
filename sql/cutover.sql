/*
 * cutover.sql: blue-green cutover (DESIGN.md "Strategies"): the swap of a
 * plan's shadow schema into its live schema and its reverse, which
 * src/cutover.c (migrate_cutover(), the fence, the verify gate, the locks)
 * calls under the live tables' locks.  Every function pins search_path.
 */
