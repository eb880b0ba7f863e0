-- test/data/mysql_blobs12.sql: long BLOB values, which mysql_fdw 2.8 cannot
-- read (its scan ends, without an error, at a bytea value over 8192
-- bytes), loaded by test/mariadb/start.sh into database migrate_blobs12
-- (used by sql/67_mysql_blobs.sql).  MariaDB's own LENGTH() and MD5() of
-- every value are in the views DocCheck and ManyCheck, the tests' oracle.
SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION';
SET SESSION group_concat_max_len = 16777216;
CREATE DATABASE migrate_blobs12;
USE migrate_blobs12;
CREATE TABLE `Digit` (`D` int NOT NULL);
INSERT INTO `Digit` VALUES (0), (1), (2), (3), (4), (5), (6), (7), (8), (9);
CREATE TABLE `N` (`I` int NOT NULL PRIMARY KEY);
INSERT INTO `N` SELECT a.D + 10 * b.D + 100 * c.D + 1000 * d.D + 10000 * e.D + 1
  FROM `Digit` a, `Digit` b, `Digit` c, `Digit` d, `Digit` e;
-- a MEDIUMBLOB of 204,800 bytes and a LONGBLOB of 1,048,576 bytes (SHA-256
-- digests, NUL bytes included), NULLs, short and empty values; a BLOB
-- (up to 65,535 bytes) and a plain column
CREATE TABLE `Doc` (
    `Id` int NOT NULL PRIMARY KEY,
    `Label` varchar(20),
    `Med` mediumblob,
    `Big` longblob,
    `Mid` blob,
    `Tiny` varbinary(16)
);
INSERT INTO `Doc`
SELECT 1, 'large',
       (SELECT GROUP_CONCAT(UNHEX(SHA2(n.I, 256)) ORDER BY n.I SEPARATOR '') FROM `N` n WHERE n.I <= 6400),
       (SELECT GROUP_CONCAT(UNHEX(SHA2(n.I, 512)) ORDER BY n.I SEPARATOR '') FROM `N` n WHERE n.I <= 16384),
       (SELECT GROUP_CONCAT(UNHEX(SHA2(n.I, 224)) ORDER BY n.I SEPARATOR '') FROM `N` n WHERE n.I <= 2340),
       UNHEX('00FF');
INSERT INTO `Doc` VALUES
    (2, 'nulls', NULL, NULL, NULL, NULL),
    (3, 'small', UNHEX('000102'), UNHEX('FF'), UNHEX('0A0B'), UNHEX('01')),
    (4, 'empty', '', '', '', ''),
    (5, 'edge', REPEAT(UNHEX('5C27'), 4096), REPEAT(UNHEX('00'), 8193), REPEAT('`', 9000), NULL);
-- 1,000 rows of 10,240 bytes each (the throughput case)
CREATE TABLE `Many` (`Id` int NOT NULL PRIMARY KEY, `Data` mediumblob NOT NULL);
INSERT INTO `Many` SELECT n.I, REPEAT(UNHEX(SHA2(n.I, 256)), 320) FROM `N` n WHERE n.I <= 1000;
-- bigint keys that a double cannot tell apart (2^53, 2^53 + 1)
CREATE TABLE `Wide` (`Id` bigint NOT NULL PRIMARY KEY, `Data` blob);
INSERT INTO `Wide` VALUES (9007199254740992, UNHEX('0992')), (9007199254740993, UNHEX('0993'));
DROP TABLE `N`;
DROP TABLE `Digit`;
CREATE VIEW `DocCheck` AS
SELECT `Id`, LENGTH(`Med`) AS `MedLength`, MD5(`Med`) AS `MedMd5`, LENGTH(`Big`) AS `BigLength`,
       MD5(`Big`) AS `BigMd5`, LENGTH(`Mid`) AS `MidLength`, MD5(`Mid`) AS `MidMd5`, MD5(`Tiny`) AS `TinyMd5`
  FROM `Doc`;
CREATE VIEW `ManyCheck` AS SELECT `Id`, LENGTH(`Data`) AS `Length`, MD5(`Data`) AS `Md5` FROM `Many`;
