/* gl.pg's C part (pg.c, built only when libpq is found): the gl.pg.conn userdata. */
#ifndef GL_PG_H
#define GL_PG_H

#include <lua.h>

/* Adds pg_connect_start, pg_methods, pg_null & co to the gl.core table on top. */
int gl_open_pg(lua_State *L);

#endif
