/* list.h — the one intrusive doubly linked list (libuv's queue.h, Linux's
 * list.h): a node lives inside the struct it links, so linking allocates
 * nothing and unlinking needs no search.
 *
 * A list is a head node; an empty list's head points at itself. A node that
 * is in no list points at itself too (ss_list_init, ss_list_remove), so
 * removing twice is harmless and ss_list_linked tells whether it is in one. */
#ifndef SS_CORE_LIST_H
#define SS_CORE_LIST_H

#include <stddef.h>

typedef struct ss_list {
    struct ss_list *prev, *next;
} ss_list;

/* The struct of `type` whose member `field` is the node at `node`. */
#define ss_list_entry(node, type, field) ((type *)((char *)(node) - offsetof(type, field)))

/* Walks the list; the node at `it` may be removed inside the body. */
#define ss_list_foreach_safe(it, tmp, head) \
    for ((it) = (head)->next, (tmp) = (it)->next; (it) != (head); (it) = (tmp), (tmp) = (it)->next)

static inline void ss_list_init(ss_list *node)
{
    node->prev = node->next = node;
}

static inline int ss_list_empty(const ss_list *head)
{
    return head->next == head;
}

/* 1 when the node is in a list (not alone). */
static inline int ss_list_linked(const ss_list *node)
{
    return node->next != node;
}

static inline void ss_list_insert_tail(ss_list *head, ss_list *node)
{
    node->next = head;
    node->prev = head->prev;
    head->prev->next = node;
    head->prev = node;
}

static inline void ss_list_insert_head(ss_list *head, ss_list *node)
{
    node->prev = head;
    node->next = head->next;
    head->next->prev = node;
    head->next = node;
}

static inline void ss_list_remove(ss_list *node)
{
    node->prev->next = node->next;
    node->next->prev = node->prev;
    ss_list_init(node);
}

/* Moves every node of `from`, in order, to `to` (an empty head); `from` is
 * left empty. */
static inline void ss_list_move_all(ss_list *from, ss_list *to)
{
    ss_list_init(to);
    if (ss_list_empty(from))
        return;
    to->next = from->next;
    to->prev = from->prev;
    to->next->prev = to;
    to->prev->next = to;
    ss_list_init(from);
}

/* The first node, or NULL when the list is empty. */
static inline ss_list *ss_list_first(const ss_list *head)
{
    return head->next == head ? NULL : head->next;
}

#endif
