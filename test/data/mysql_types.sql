-- test/data/mysql_types.sql: MySQL/MariaDB types that need cast rules,
-- loaded by test/mariadb/start.sh into database migrate_types (used by
-- sql/41_automap_mysql.sql). mysql_fdw 2.8 cannot IMPORT tables with SET
-- (skipped) or YEAR (the import fails) columns: those are in table Extras,
-- which the test leaves out of IMPORT FOREIGN SCHEMA and automap creates.
CREATE DATABASE migrate_types;
USE migrate_types;
CREATE TABLE `Gadget` (
    `GadgetId` int unsigned NOT NULL PRIMARY KEY,
    `IsActive` tinyint(1) NOT NULL,
    `SmallCount` smallint unsigned,
    `BigCount` bigint unsigned,
    `MadeAt` datetime,
    `SoldOn` date,
    `Color` enum('red','green','blue'),
    `Price` decimal(8,2),
    `Label` varchar(30)
);
INSERT INTO `Gadget` VALUES
    (1, 1, 65535, 18446744073709551615, '2024-01-02 03:04:05', '2024-01-02', 'red', 12.50, 'first'),
    (2, 0, 0, 0, '0000-00-00 00:00:00', '0000-00-00', 'blue', 999999.99, 'second, longer label'),
    (4294967295, 1, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
CREATE TABLE `Extras` (
    `ExtrasId` int NOT NULL PRIMARY KEY,
    `Tags` set('new','sale','gift'),
    `ModelYear` year
);
INSERT INTO `Extras` VALUES (1, 'new,gift', 2024), (2, '', 1999), (3, NULL, NULL);
