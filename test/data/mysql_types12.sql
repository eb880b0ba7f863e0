-- test/data/mysql_types12.sql: MySQL/MariaDB types that mysql_fdw 2.8
-- cannot import or read as they are, loaded by test/mariadb/start.sh into
-- database migrate_types12 (used by sql/62_mysql_types.sql): ENUM, SET,
-- YEAR, unsigned integers at their maxima, zero dates and zero-in-date
-- values (the server's default sql_mode of MariaDB stores them), a 200 KB
-- BLOB with NUL bytes, a LONGTEXT of about 1 MB and a TINYBLOB.
SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION';
SET SESSION group_concat_max_len = 16777216;
CREATE DATABASE migrate_types12;
USE migrate_types12;
CREATE TABLE `Thing` (
    `Id` int unsigned NOT NULL PRIMARY KEY,
    `Kind` enum('small','medium','large'),
    `Flags` set('red','green','blue'),
    `Made` year,
    `U8` tinyint unsigned,
    `U16` smallint unsigned,
    `U24` mediumint unsigned,
    `U32` int unsigned,
    `U64` bigint unsigned,
    `S64` bigint,
    `Born` date,
    `Seen` datetime,
    `Stamp` timestamp NULL DEFAULT NULL
);
INSERT INTO `Thing` VALUES
    (4294967295, 'large', 'red,green,blue', 2155, 255, 65535, 16777215, 4294967295,
     18446744073709551615, -9223372036854775808, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00'),
    (1, 'small', '', 1901, 0, 0, 0, 0, 0, 9223372036854775807, '2020-00-15', '2020-05-00 10:11:12', NULL),
    (2, 'medium', 'green', 0, 1, 2, 3, 4, 9223372036854775808, 0, '1999-12-31', '2024-02-29 23:59:59', '2024-02-29 23:59:59'),
    (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
CREATE TABLE `Blob` (
    `Id` int NOT NULL PRIMARY KEY,
    `Data` longblob,
    `Body` longtext,
    `Small` tinyblob
);
-- 6,400 SHA-256 digests: 204,800 bytes, NUL bytes included
CREATE TABLE `Digit` (`D` int NOT NULL);
INSERT INTO `Digit` VALUES (0), (1), (2), (3), (4), (5), (6), (7), (8), (9);
INSERT INTO `Blob`
SELECT 1, GROUP_CONCAT(UNHEX(SHA2(n.i, 256)) ORDER BY n.i SEPARATOR ''),
       REPEAT('Zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich. ', 16000),
       UNHEX('00FF00FF')
  FROM (SELECT a.D + 10 * b.D + 100 * c.D + 1000 * d.D + 1 AS i
          FROM `Digit` a, `Digit` b, `Digit` c, `Digit` d) n
 WHERE n.i <= 6400;
DROP TABLE `Digit`;
INSERT INTO `Blob` VALUES
    (2, UNHEX('000102030405060708090A'), 'short', NULL),
    (3, NULL, NULL, ''),
    (4, REPEAT(UNHEX('00AB'), 4097), REPEAT('x', 70000), REPEAT(UNHEX('01'), 255));
-- what a DBA adds for BLOBs longer than mysql_fdw can read (8192 bytes):
-- the bytes as hex digits, which mysql_fdw reads as text of any length
CREATE VIEW `BlobHex` AS SELECT `Id`, HEX(`Data`) AS `Data`, `Body`, `Small` FROM `Blob`;
-- MariaDB's own lengths and digests, the tests' oracle
CREATE VIEW `BlobCheck` AS
SELECT `Id`, LENGTH(`Data`) AS `DataLength`, MD5(`Data`) AS `DataMd5`,
       CHAR_LENGTH(`Body`) AS `BodyLength`, MD5(`Body`) AS `BodyMd5`, MD5(`Small`) AS `SmallMd5`
  FROM `Blob`;
-- a table whose name mysql_fdw's IMPORT ... EXCEPT cannot quote
CREATE DATABASE migrate_types12q;
USE migrate_types12q;
CREATE TABLE `Bob's` (`Id` int PRIMARY KEY, `Made` year);
INSERT INTO `Bob's` VALUES (1, 1999), (2, 0);
CREATE TABLE `Plain` (`Id` int PRIMARY KEY, `Label` varchar(10));
INSERT INTO `Plain` VALUES (1, 'one');
