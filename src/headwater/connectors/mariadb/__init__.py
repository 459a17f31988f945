"""The MariaDB/MySQL connector."""
