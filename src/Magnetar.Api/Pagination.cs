using System.Linq.Expressions;
using System.Reflection;
using Magnetar.Domain;
using Microsoft.AspNetCore.Http;
using Microsoft.EntityFrameworkCore;

namespace Magnetar.Api;

/// <summary>limit / marker / sort_key / sort_dir as Magnum validates and applies them (max_limit 1000).</summary>
public sealed record PageRequest(int Limit, string? Marker, string SortKey, bool Descending, bool LimitGiven)
{
    public const int MaxLimit = 1000;

    public static PageRequest From(HttpRequest request, IReadOnlyDictionary<string, string> sortKeys)
    {
        var q = request.Query;
        int limit = MaxLimit;
        var limitGiven = false;
        if (q.TryGetValue("limit", out var l) && !string.IsNullOrEmpty(l))
        {
            if (!int.TryParse(l, out limit))
                throw MagnumError.BadRequest($"Invalid input for field/attribute limit. Value: '{l}'. unable to convert to int");
            if (limit <= 0) throw MagnumError.BadRequest("Limit must be positive");
            limit = Math.Min(limit, MaxLimit);
            limitGiven = true;
        }
        var sortDir = q.TryGetValue("sort_dir", out var d) && !string.IsNullOrEmpty(d) ? d.ToString() : "asc";
        if (sortDir is not ("asc" or "desc"))
            throw MagnumError.BadRequest($"Invalid sort direction: {sortDir}. Acceptable values are 'asc' or 'desc'");
        var sortKey = q.TryGetValue("sort_key", out var k) && !string.IsNullOrEmpty(k) ? k.ToString() : "id";
        if (!sortKeys.ContainsKey(sortKey))
            throw MagnumError.BadRequest($"The sort_key value \"{sortKey}\" is an invalid field for sorting");
        var marker = q.TryGetValue("marker", out var m) && !string.IsNullOrEmpty(m) ? m.ToString() : null;
        return new PageRequest(limit, marker, sortKey, sortDir == "desc", limitGiven);
    }

    /// <summary>The <c>next</c> link Magnum adds when a page is full.</summary>
    public string? NextLink(string baseUrl, string resourcePath, int count, string? lastMarker)
    {
        if (count == 0 || count != Limit || lastMarker is null) return null;
        return $"{baseUrl}/v1/{resourcePath}?sort_key={SortKey}&sort_dir={(Descending ? "desc" : "asc")}&limit={Limit}&marker={lastMarker}";
    }
}

public static class Paging
{
    /// <summary>Orders by the sort key (then id) and keeps the rows after the marker row, in the database.</summary>
    public static IQueryable<T> Page<T>(this IQueryable<T> query, PageRequest page, IReadOnlyDictionary<string, string> sortKeys, T? marker)
        where T : class
    {
        var property = sortKeys[page.SortKey];
        var param = Expression.Parameter(typeof(T), "e");
        var member = Expression.Property(param, property);
        var idMember = Expression.Property(param, "Id");
        if (marker is not null)
        {
            var markerValue = typeof(T).GetProperty(property, BindingFlags.Public | BindingFlags.Instance)!.GetValue(marker);
            var markerId = (long)typeof(T).GetProperty("Id")!.GetValue(marker)!;
            Expression after;
            if (property == "Id")
            {
                after = page.Descending ? Expression.LessThan(idMember, Expression.Constant(markerId)) : Expression.GreaterThan(idMember, Expression.Constant(markerId));
            }
            else
            {
                var constant = Expression.Constant(markerValue, member.Type);
                var beyond = Compare(member, constant, page.Descending);
                var tie = Expression.AndAlso(Expression.Equal(member, constant),
                    page.Descending ? Expression.LessThan(idMember, Expression.Constant(markerId)) : Expression.GreaterThan(idMember, Expression.Constant(markerId)));
                after = Expression.OrElse(beyond, tie);
            }
            query = query.Where(Expression.Lambda<Func<T, bool>>(after, param));
        }
        var keySelector = Expression.Lambda(member, param);
        var ordered = (IOrderedQueryable<T>)typeof(Queryable).GetMethods()
            .First(m => m.Name == (page.Descending ? "OrderByDescending" : "OrderBy") && m.GetParameters().Length == 2)
            .MakeGenericMethod(typeof(T), member.Type)
            .Invoke(null, [query, keySelector])!;
        if (property != "Id")
            ordered = page.Descending ? ordered.ThenByDescending(e => EF.Property<long>(e, "Id")) : ordered.ThenBy(e => EF.Property<long>(e, "Id"));
        return ordered.Take(page.Limit);
    }

    private static Expression Compare(MemberExpression member, ConstantExpression constant, bool descending)
    {
        if (member.Type == typeof(string))
        {
            var compare = typeof(string).GetMethod(nameof(string.Compare), [typeof(string), typeof(string)])!;
            var call = Expression.Call(compare, member, constant);
            return descending ? Expression.LessThan(call, Expression.Constant(0)) : Expression.GreaterThan(call, Expression.Constant(0));
        }
        return descending ? Expression.LessThan(member, constant) : Expression.GreaterThan(member, constant);
    }
}
